package ctl

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/control"
)

func connect(instance string) (*control.Client, error) {
	uid, _ := cmdio.InvokingUser()
	return control.Connect(control.Dir(uid), instance)
}

func newStatusCommand(streams cmdio.Streams) *cobra.Command {
	var asJSON bool
	var instance, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running kubefwd forwards, with each forward's state and traffic",
		Args:  cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				output = "json"
			}
			switch output {
			case "", "wide", "json", "yaml":
			default:
				return cmdio.UsageError{Err: fmt.Errorf("-o %q: want wide, json or yaml (or nothing, for the table)", output)}
			}
			c, err := connect(instance)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			switch output {
			case "json":
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			case "yaml":
				data, err := yaml.Marshal(st)
				if err != nil {
					return err
				}
				_, err = streams.Out.Write(data)
				return err
			}
			printStatus(streams, st, output == "wide")
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "wide (also names, pods, failures and the last error), json or yaml (the full status); the table when not given")
	cmd.Flags().BoolVar(&asJSON, "json", false, "the same as -o json")
	_ = cmd.Flags().MarkHidden("json")
	instanceFlag(cmd, &instance)
	return cmd
}

func printStatus(streams cmdio.Streams, st api.Status, wide bool) {
	w := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	header := "SERVICE\tADDRESS\tPORTS\tSTATE\tENDPOINTS\tCONNS\tIN\tOUT"
	if wide {
		header += "\tFAILED\tRETRIED\tNAMES\tPODS\tLAST ERROR"
	}
	fmt.Fprintln(w, header)
	for _, f := range st.Forwards {
		name := f.Namespace + "/" + f.Service
		if f.Pod != "" {
			name = f.Namespace + "/" + f.Pod + "." + f.Service
		}
		if len(st.Contexts) > 1 {
			name = f.Context + "/" + name
		}
		var ports, pods []string
		var eps, conns, in, out, failed, retried int64
		var lastErr string
		var lastAt time.Time
		for _, p := range f.Ports {
			port := strconv.Itoa(int(p.Local))
			if p.Local != p.Port {
				port += "←" + strconv.Itoa(int(p.Port))
			}
			if p.Protocol == "UDP" {
				port += "/udp"
			}
			if p.Relay != "" {
				port += "(relay)"
			}
			ports = append(ports, port)
			eps = max(eps, int64(len(p.Endpoints)))
			conns += p.Connections
			in += p.BytesIn
			out += p.BytesOut
			failed += p.Failed
			retried += p.Retried
			for _, ep := range p.Endpoints {
				pod, _, _ := strings.Cut(strings.TrimPrefix(ep, f.Namespace+"/"), ":")
				if !slices.Contains(pods, pod) {
					pods = append(pods, pod)
				}
			}
			if p.LastErrorAt != nil && p.LastErrorAt.After(lastAt) {
				lastErr, lastAt = p.LastError, *p.LastErrorAt
			}
		}
		state := f.State
		if f.Reason != "" && f.State != api.StateActive {
			state += ": " + f.Reason
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s", name, orDash(f.Address), orDash(strings.Join(ports, ",")), state, eps, conns, byteSize(in), byteSize(out))
		if wide {
			if lastErr != "" {
				lastErr = lastAt.Local().Format(time.TimeOnly) + " " + lastErr
			}
			line += fmt.Sprintf("\t%d\t%d\t%s\t%s\t%s", failed, retried, orDash(strings.Join(f.Names, ",")), orDash(strings.Join(pods, ",")), orDash(lastErr))
		}
		fmt.Fprintln(w, line)
		for _, skip := range f.Skipped {
			fmt.Fprintf(w, "\t\t\tport %s\t\t\t\t\n", skip)
		}
	}
	w.Flush()
	if st.HostsError != "" {
		fmt.Fprintf(streams.Out, "\nthe hosts file cannot be written (retrying): %s\n", st.HostsError)
	}
	if len(st.HostsSkipped) > 0 {
		fmt.Fprintln(streams.Out, "\nnames not written to the hosts file:")
		for _, s := range st.HostsSkipped {
			fmt.Fprintf(streams.Out, "  %s: %s\n", s.Name, s.Reason)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
