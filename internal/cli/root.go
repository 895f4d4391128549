// Package cli is kubefwd's command tree: one file per verb, each with its
// options bound to flags, and Main, which maps errors to exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/cmdio"
	"github.com/kubefwd/kubefwd/internal/ctl"
)

// Exit codes. Scripts and tools (Tilt) tell failures apart by these.
const (
	ExitOK         = 0
	ExitFailure    = 1 // a runtime failure
	ExitUsage      = 2 // bad flags, arguments or input files
	ExitNoCluster  = 3 // no cluster could be reached or used
	ExitPrivileges = 4 // missing local privileges (hosts file, ports)
)

// Streams and UsageError are every command's (package cmdio).
type (
	Streams    = cmdio.Streams
	UsageError = cmdio.UsageError
	LogSink    = cmdio.LogSink
)

// NewLogSink writes to w until redirected.
func NewLogSink(w io.Writer) *LogSink { return cmdio.NewLogSink(w) }

// ClusterError means no cluster could be used; Main exits with ExitNoCluster.
type ClusterError struct{ Err error }

func (e ClusterError) Error() string { return e.Err.Error() }
func (e ClusterError) Unwrap() error { return e.Err }

// PrivilegeError means a local permission is missing; Main exits with
// ExitPrivileges.
type PrivilegeError struct{ Err error }

func (e PrivilegeError) Error() string { return e.Err.Error() }
func (e PrivilegeError) Unwrap() error { return e.Err }

// Main runs kubefwd with args and returns the process exit code. SIGINT
// and SIGTERM end the command's context, here and nowhere else; a second
// one exits at once (see interrupts).
func Main(ctx context.Context, args []string, streams Streams) int {
	ctx, in := watchInterrupts(ctx, streams.Err)
	defer in.stop()
	root := newRoot(streams, in)
	root.SetArgs(defaultToSvc(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if sig, ok := in.signalled().(syscall.Signal); ok && errors.Is(err, context.Canceled) {
		// Interrupted before it finished (a verb waiting on the instance,
		// svc still checking its clusters): silent, with the status a
		// process killed by the signal has in a shell, as before signals
		// became cancellation.
		return 128 + int(sig)
	}
	fmt.Fprintf(streams.Err, "kubefwd: %v\n", err)
	var (
		usage   UsageError
		cluster ClusterError
		priv    PrivilegeError
	)
	switch {
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &cluster):
		return ExitNoCluster
	case errors.As(err, &priv):
		return ExitPrivileges
	}
	return ExitFailure
}

// defaultToSvc makes `kubefwd -n x` mean `kubefwd svc -n x`, as upstream
// does: flags without a verb go to svc. Help and version stay the root's.
func defaultToSvc(args []string) []string {
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") {
		return args
	}
	for _, a := range args {
		if a == "-h" || a == "--help" {
			return args
		}
	}
	return append([]string{"svc"}, args...)
}

// NewRoot builds the command tree.
func NewRoot(streams Streams) *cobra.Command { return newRoot(streams, nil) }

// newRoot builds the command tree; in (nil: no signal handling) is where
// svc sets its emergency cleanup.
func newRoot(streams Streams, in *interrupts) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubefwd",
		Short: "Reach every Service of a Kubernetes cluster by its in-cluster name and port",
		// Main prints errors once, in one sentence; cobra must not add its own.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return UsageError{Err: fmt.Errorf("unknown command %q; run 'kubefwd --help' for the list", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{Err: err} })
	root.AddCommand(newVersionCommand(streams), newSvcCommand(streams, in), newHelperCommand(streams), newExecAsUserCommand(), newRelayCommand(streams))
	// The verbs that steer a running instance link none of the engine.
	root.AddCommand(ctl.Commands(streams, Version())...)
	return root
}
