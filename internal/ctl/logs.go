package ctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/cmdio"
)

func newLogsCommand(streams cmdio.Streams) *cobra.Command {
	var instance string
	var req api.LogsRequest
	cmd := &cobra.Command{
		Use:   "logs SERVICE",
		Short: "Print the log of a forwarded Service's pod, read by the running kubefwd",
		Long: `Prints the log of one ready pod of a forwarded Service (the first, or --pod),
read by the running kubefwd with its own credentials: no kubeconfig or sudo
needed here. A SERVICE is web, web.demo2, demo/web or any name in kubefwd status.

  kubefwd logs web -f --tail 20`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdio.UsageError{Err: fmt.Errorf("kubefwd logs needs one service, for example: kubefwd logs web")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Tail < 0 {
				return cmdio.UsageError{Err: fmt.Errorf("--tail %d: want a number of lines, 0 (all) or more", req.Tail)}
			}
			c, err := connect(instance)
			if err != nil {
				return err
			}
			req.Service = args[0]
			return c.Logs(cmd.Context(), req, streams.Out)
		},
	}
	cmd.Flags().StringVar(&req.Pod, "pod", "", "which of the Service's ready pods (default: the first)")
	cmd.Flags().StringVarP(&req.Container, "container", "c", "", "which container, when the pod has several")
	cmd.Flags().Int64Var(&req.Tail, "tail", 0, "only the last N lines (0: all)")
	cmd.Flags().BoolVarP(&req.Follow, "follow", "f", false, "keep printing new lines until interrupted")
	instanceFlag(cmd, &instance)
	return cmd
}
