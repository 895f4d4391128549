//go:build !unix

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// There is no sudo here: kubefwd never acts for another user.
func newExecAsUserCommand() *cobra.Command {
	return &cobra.Command{
		Use:    execAsUserCommand,
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return UsageError{Err: errors.New("exec-as-user is not available on this platform")}
		},
	}
}
