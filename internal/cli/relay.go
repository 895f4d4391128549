package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/relay"
)

// newRelayCommand is what runs in the relay pod: it dials, inside the
// cluster, what kubefwd asks for over port-forward (UDP, and TCP to
// endpoints that are not pods), and ends by itself once no kubefwd has
// used it for a while.
func newRelayCommand(streams Streams) *cobra.Command {
	var (
		listen             string
		idleExit, flowIdle time.Duration
		verbose            bool
	)
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Run the in-cluster relay (started in a pod by svc --relay; not for your laptop)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if idleExit < 0 || flowIdle < 0 {
				return UsageError{Err: errors.New("--idle-exit and --flow-idle must not be negative")}
			}
			addr, err := net.ResolveTCPAddr("tcp", listen)
			if err != nil {
				return UsageError{Err: fmt.Errorf("--listen %q: %w", listen, err)}
			}
			ln, err := net.ListenTCP("tcp", addr)
			if err != nil {
				return fmt.Errorf("relay: cannot listen on %s: %w", listen, err)
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(streams.Err, &slog.HandlerOptions{Level: level}))
			log.Info("relay listening", "address", ln.Addr().String(), "version", Version(), "idle-exit", idleExit)
			s := &relay.Server{Log: log, IdleExit: idleExit, FlowIdle: flowIdle}
			err = s.Serve(cmd.Context(), ln)
			if errors.Is(err, relay.ErrIdle) {
				log.Info("no kubefwd used the relay for the idle limit; ending", "idle-exit", idleExit)
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":7300", "address to accept kubefwd's streams on (reached through port-forward only)")
	f.DurationVar(&idleExit, "idle-exit", 10*time.Minute, "end after this long without a stream open (0: never)")
	f.DurationVar(&flowIdle, "flow-idle", 2*time.Minute, "end a UDP flow after this long without a datagram either way")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every stream")
	return cmd
}
