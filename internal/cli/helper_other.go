//go:build !unix

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// The helper passes listening sockets over a Unix socket (SCM_RIGHTS),
// which this platform does not have; run kubefwd as an administrator.
func newHelperCommand(Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "helper",
		Short:  "The privileged helper (Linux and macOS only)",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return UsageError{Err: errors.New("the privileged helper is not available on this platform; run kubefwd as an administrator")}
		},
	}
}
