package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/control"
)

func connect(instance string) (*control.Client, error) {
	uid, _ := invokingUser()
	return control.Connect(control.Dir(uid), instance)
}

func newStatusCommand(streams Streams) *cobra.Command {
	var asJSON bool
	var instance string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running kubefwd forwards, with each forward's state and traffic",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := connect(instance)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(streams, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the full status as JSON")
	instanceFlag(cmd, &instance)
	return cmd
}

func printStatus(streams Streams, st api.Status) {
	w := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERVICE\tADDRESS\tPORTS\tSTATE\tENDPOINTS\tCONNS\tIN\tOUT")
	for _, f := range st.Forwards {
		name := f.Namespace + "/" + f.Service
		if f.Pod != "" {
			name = f.Namespace + "/" + f.Pod + "." + f.Service
		}
		if len(st.Contexts) > 1 {
			name = f.Context + "/" + name
		}
		var ports []string
		var eps, conns, in, out int64
		for _, p := range f.Ports {
			port := strconv.Itoa(int(p.Local))
			if p.Local != p.Port {
				port += "←" + strconv.Itoa(int(p.Port))
			}
			ports = append(ports, port)
			eps = max(eps, int64(len(p.Endpoints)))
			conns += p.Connections
			in += p.BytesIn
			out += p.BytesOut
		}
		state := f.State
		if f.Reason != "" && f.State != api.StateActive {
			state += ": " + f.Reason
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", name, orDash(f.Address), orDash(strings.Join(ports, ",")), state, eps, conns, bytes(in), bytes(out))
		for _, skip := range f.Skipped {
			fmt.Fprintf(w, "\t\t\tport %s\t\t\t\t\n", skip)
		}
	}
	w.Flush()
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

func bytes(n int64) string {
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
