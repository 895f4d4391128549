package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/control"
	"github.com/kubefwd/kubefwd/internal/namespaces"
	"github.com/kubefwd/kubefwd/internal/tilt"
)

// Commands are the verbs that steer a running kubefwd through its control
// socket; version is kubefwd's, for the MCP server to report.
func Commands(streams cmdio.Streams, version string) []*cobra.Command {
	return []*cobra.Command{newStatusCommand(streams), newRefreshCommand(streams), newEventsCommand(streams),
		newNamespacesCommand(streams), newStopCommand(streams), newPauseCommand(streams), newResumeCommand(streams),
		newLogsCommand(streams), newEnvCommand(streams), newMCPCommand(version), newUICommand(streams)}
}

func instanceFlag(cmd *cobra.Command, instance *string) {
	cmd.Flags().StringVar(instance, "instance", "", "which kubefwd, when several run: its name (the error lists them) or its socket path")
}

func newRefreshCommand(streams cmdio.Streams) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:   "refresh [SERVICE...]",
		Short: "Make a running kubefwd reopen its tunnels and re-read its Services (the fix for a wedged forward)",
		Long: `Drops the tunnels of the named services (all when none is named) and re-reads
them from the cluster; the next connection opens a fresh tunnel. Listeners,
addresses and names stay. A SERVICE is web, web.demo, demo/web or any name in
kubefwd status.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(instance)
			if err != nil {
				return err
			}
			done, err := c.Refresh(cmd.Context(), args...)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				fmt.Fprintln(streams.Out, "refreshed: every tunnel is reopened on its next connection")
				return nil
			}
			fmt.Fprintf(streams.Out, "refreshed: %s\n", strings.Join(done, ", "))
			return nil
		},
	}
	instanceFlag(cmd, &instance)
	return cmd
}

func newPauseCommand(streams cmdio.Streams) *cobra.Command {
	return servicesCommand(streams, "pause", "paused",
		"Stop forwarding some Services of a running kubefwd, until kubefwd resume",
		`Closes the named Services' listeners and takes their names out of the hosts file,
live; the others are untouched. kubefwd status shows them paused until
kubefwd resume. A SERVICE is web, web.demo, demo/web or any name in kubefwd status.`,
		(*control.Client).Pause)
}

func newResumeCommand(streams cmdio.Streams) *cobra.Command {
	return servicesCommand(streams, "resume", "resumed",
		"Forward Services paused with kubefwd pause again",
		`Forwards the named paused Services again, at the addresses and names they had.
A SERVICE is the name it was paused by, web.demo, demo/web or ctx/demo/web.`,
		(*control.Client).Resume)
}

// servicesCommand is a verb that acts on named Services of the instance and
// says which it changed.
func servicesCommand(streams cmdio.Streams, verb, did, short, long string,
	do func(*control.Client, context.Context, ...string) ([]string, error)) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:   verb + " SERVICE...",
		Short: short,
		Long:  long,
		Args:  needServices(verb),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(instance)
			if err != nil {
				return err
			}
			done, err := do(c, cmd.Context(), args...)
			if err != nil {
				return err
			}
			fmt.Fprintf(streams.Out, "%s: %s\n", did, strings.Join(done, ", "))
			return nil
		},
	}
	instanceFlag(cmd, &instance)
	return cmd
}

// needServices refuses a verb given no service: pausing everything is
// what kubefwd stop does.
func needServices(verb string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmdio.UsageError{Err: fmt.Errorf("kubefwd %s needs the services to %s, for example: kubefwd %s web", verb, verb, verb)}
		}
		return nil
	}
}

func newStopCommand(streams cmdio.Streams) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop a running kubefwd (its hosts entries are removed), without sudo",
		Args:  cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := connect(instance)
			if err != nil {
				return err
			}
			if err := c.Stop(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(streams.Out, "stopping")
			return nil
		},
	}
	instanceFlag(cmd, &instance)
	return cmd
}

func newEventsCommand(streams cmdio.Streams) *cobra.Command {
	var instance string
	var asJSON bool
	var recent int
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow a running kubefwd's state changes and errors as they happen",
		Args:  cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if recent < 0 {
				return cmdio.UsageError{Err: fmt.Errorf("--recent %d: want a number of events, 0 or more", recent)}
			}
			c, err := connect(instance)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(streams.Out)
			dropped := false
			err = c.EventsSince(cmd.Context(), recent, func(ev api.Event) bool {
				dropped = ev.Type == api.EventDropped
				if asJSON {
					return enc.Encode(ev) == nil
				}
				fmt.Fprintln(streams.Out, formatEvent(ev))
				return true
			})
			if err == nil && dropped {
				return fmt.Errorf("kubefwd dropped this client: it fell behind")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print newline-delimited JSON, one event per line")
	cmd.Flags().IntVar(&recent, "recent", 0, "first print the last N events the instance kept (it keeps 500)")
	instanceFlag(cmd, &instance)
	return cmd
}

func formatEvent(ev api.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.Local().Format("15:04:05.000"))
	b.WriteString("  ")
	b.WriteString(ev.Type)
	if ev.Service != "" {
		b.WriteString("  " + ev.Namespace + "/" + ev.Service)
	} else if ev.Namespace != "" {
		b.WriteString("  namespace " + ev.Namespace)
	}
	if ev.Pod != "" {
		b.WriteString("  pod " + ev.Pod)
	}
	for _, s := range []string{ev.State, ev.Address, ev.Reason, ev.Message} {
		if s != "" {
			b.WriteString("  " + s)
		}
	}
	return b.String()
}

func newNamespacesCommand(streams cmdio.Streams) *cobra.Command {
	var instance string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "namespaces",
		Aliases: []string{"ns"},
		Short:   "List or change the namespaces a running kubefwd forwards, live",
		Long: `Namespaces are NAME (in every context kubefwd forwards from) or CONTEXT/NAME.
Services of added namespaces are forwarded within a moment; those of removed
ones lose their listeners and hosts entries. The first namespace of the first
context gets the short names (web rather than web.demo).`,
		Args: cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listNamespaces(cmd.Context(), streams, instance, asJSON)
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the forwarded namespaces and their state",
		Args:  cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listNamespaces(cmd.Context(), streams, instance, asJSON)
		},
	}
	change := func(op, short string, minArgs int) *cobra.Command {
		return &cobra.Command{
			Use:   op + " NAMESPACE...",
			Short: short,
			Args:  cobra.MinimumNArgs(minArgs),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := connect(instance)
				if err != nil {
					return err
				}
				res, err := c.ChangeNamespaces(cmd.Context(), op, args)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(streams, res)
				}
				for _, r := range res.Added {
					fmt.Fprintf(streams.Out, "added %s\n", r)
				}
				for _, r := range res.Removed {
					fmt.Fprintf(streams.Out, "removed %s\n", r)
				}
				for _, n := range res.Notes {
					fmt.Fprintln(streams.Out, n)
				}
				printNamespaces(streams, res.Namespaces)
				return nil
			},
		}
	}
	set := change("set", "Forward exactly these namespaces (none: forward nothing)", 0)
	set.Use = "set [NAMESPACE...]"
	cmd.AddCommand(list, set,
		change("add", "Also forward these namespaces", 1),
		change("remove", "Stop forwarding these namespaces", 1),
		newFollowTiltCommand(streams, &instance))
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.PersistentFlags().StringVar(&instance, "instance", "", "which kubefwd, when several run: its name (the error lists them) or its socket path")
	return cmd
}

func listNamespaces(ctx context.Context, streams cmdio.Streams, instance string, asJSON bool) error {
	c, err := connect(instance)
	if err != nil {
		return err
	}
	list, err := c.Namespaces(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(streams, list)
	}
	printNamespaces(streams, list)
	return nil
}

func printNamespaces(streams cmdio.Streams, list []api.ContextNamespaces) {
	w := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTEXT\tNAMESPACE\tSTATE\tSERVICES")
	for _, c := range list {
		if len(c.Namespaces) == 0 {
			fmt.Fprintf(w, "%s\t-\tnothing forwarded (add namespaces with: kubefwd namespaces add NAME)\t0\n", c.Context)
		}
		for _, ns := range c.Namespaces {
			name := ns.Namespace
			if c.All {
				name = "(all)"
			}
			state := "watching"
			switch {
			case ns.Forbidden:
				state = "forbidden: " + ns.Error
			case !ns.Synced && ns.Error != "":
				state = "cannot list: " + ns.Error
			case !ns.Synced:
				state = "syncing"
			case ns.Error != "":
				state = "watching (last error: " + ns.Error + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", c.Context, name, state, ns.Services)
		}
	}
	w.Flush()
}

func printJSON(streams cmdio.Streams, v any) error {
	enc := json.NewEncoder(streams.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newFollowTiltCommand(streams cmdio.Streams, instance *string) *cobra.Command {
	f := &tilt.Follower{Tilt: "tilt"}
	cmd := &cobra.Command{
		Use:   "follow-tilt",
		Short: "Keep the forwarded namespaces equal to those Tilt deploys to (runs until stopped)",
		Long: `Follows Tilt's API and sets kubefwd's namespaces to the ones Tilt deploys to:
the namespaces of the pods Tilt discovered, or while a resource has none, of
the objects it deployed (cluster-scoped ones, such as a Namespace, do not
count). The namespace of Tilt's first resource gets the short names, unless
--short-names-from says which. It waits for Tilt and for kubefwd when they
are not up yet, sets kubefwd again whenever it restarts, and exits when its
parent (Tilt) goes away. The Tilt extension in integrations/tilt runs it.`,
		Args: cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, ns := range append([]string{f.ShortNamesFrom}, f.Extra...) {
				if ns == "" {
					continue
				}
				if _, err := namespaces.Parse(ns); err != nil {
					return cmdio.UsageError{Err: err}
				}
			}
			log := streams.Log
			if log == nil {
				log = slog.New(slog.NewTextHandler(streams.Err, nil))
			}
			f.Log = log
			f.Apply = func(ctx context.Context, namespaces []string) error {
				c, err := connect(*instance)
				if err != nil {
					return err
				}
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err = c.ChangeNamespaces(actx, api.NamespacesSet, namespaces)
				return err
			}
			f.Attach = func(ctx context.Context, up func()) error {
				c, err := connect(*instance)
				if err != nil {
					return err
				}
				// The event stream lasts as long as the instance: its end
				// is kubefwd stopping or restarting.
				return c.Events(ctx, func(ev api.Event) bool {
					if ev.Type == api.EventSubscribed {
						up()
					}
					return true
				})
			}
			// SIGINT and SIGTERM end cmd.Context() (cli.Main).
			ctx, orphaned := context.WithCancel(cmd.Context())
			defer orphaned()
			go exitWithParent(ctx, orphaned, log)
			return f.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&f.Tilt, "tilt", "tilt", "the tilt binary")
	cmd.Flags().StringSliceVar(&f.Args, "tilt-arg", nil, "extra argument for tilt get, e.g. --tilt-arg=--port=10351 (Tilt sets TILT_PORT for the commands it runs); repeatable")
	cmd.Flags().StringVar(&f.ShortNamesFrom, "short-names-from", "", "the namespace whose Services get the short names (default: that of Tilt's first resource)")
	cmd.Flags().StringSliceVar(&f.Extra, "extra-namespace", nil, "forward this namespace as well, whatever Tilt deploys; repeatable")
	return cmd
}

// exitWithParent cancels when the process that started this one is gone:
// Tilt killed with SIGKILL cannot stop its commands, and a follower left
// behind would keep setting the namespaces of the next session's kubefwd.
// (Polling getppid works on Linux and macOS alike; the parent is re-parented
// to init or a subreaper when it dies.)
func exitWithParent(ctx context.Context, cancel context.CancelFunc, log *slog.Logger) {
	parent := os.Getppid()
	if parent <= 1 {
		return // started by init: nothing to follow
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if os.Getppid() != parent {
				log.Info("the process that started this one (Tilt) is gone; stopping")
				cancel()
				return
			}
		}
	}
}
