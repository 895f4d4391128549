package ctl

import (
	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/tui"
)

func newUICommand(_ cmdio.Streams) *cobra.Command {
	var instance string
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Show a running kubefwd in a full-screen live view, and steer it (no root needed)",
		Long: `Attaches a full-screen live view to a running kubefwd — yours, or one started
with sudo or through the helper — as you, through its control socket. Every
forward with its state, pods, connections and traffic; details with names,
connection strings, pods and their logs; events; pausing, refreshing and
choosing namespaces live. Press ? for the keys. Quitting leaves kubefwd running;
when it stops, the view says so and attaches again when one runs.`,
		Args: cmdio.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdio.NeedTerminal("kubefwd ui"); err != nil {
				return err
			}
			return tui.Run(cmd.Context(), tui.Options{
				Connect:  func() (tui.Backend, error) { return connect(instance) },
				Instance: instance,
			})
		},
	}
	instanceFlag(cmd, &instance)
	return cmd
}
