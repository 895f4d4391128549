//go:build unix

package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"
)

// newExecAsUserCommand is the hidden verb through which kubefwd, root
// under sudo, runs a kubeconfig exec plugin as the invoking user: it drops
// to the user's groups, gid and uid (every thread; the process never runs
// anything as root after this), sets HOME, USER and LOGNAME to theirs,
// and executes the plugin, which inherits its stdin, stdout and
// environment from client-go as it would have directly.
func newExecAsUserCommand() *cobra.Command {
	var uid, gid int
	var groups []int
	var home, name string
	cmd := &cobra.Command{
		Use:    execAsUserCommand + " --uid UID --gid GID -- COMMAND [ARG...]",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if uid <= 0 || gid < 0 {
				return UsageError{Err: errors.New("exec-as-user: --uid and --gid of a user other than root are required")}
			}
			if err := syscall.Setgroups(append([]int{gid}, groups...)); err != nil {
				return fmt.Errorf("exec-as-user: setgroups: %w", err)
			}
			if err := syscall.Setgid(gid); err != nil {
				return fmt.Errorf("exec-as-user: setgid: %w", err)
			}
			if err := syscall.Setuid(uid); err != nil {
				return fmt.Errorf("exec-as-user: setuid: %w", err)
			}
			if os.Geteuid() != uid || os.Getuid() != uid {
				return fmt.Errorf("exec-as-user: still uid %d after setuid(%d)", os.Geteuid(), uid)
			}
			if home != "" {
				os.Setenv("HOME", home)
			}
			if name != "" {
				os.Setenv("USER", name)
				os.Setenv("LOGNAME", name)
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				return fmt.Errorf("exec plugin %s: %w", args[0], err)
			}
			return syscall.Exec(path, args, os.Environ())
		},
	}
	f := cmd.Flags()
	f.IntVar(&uid, "uid", -1, "user id")
	f.IntVar(&gid, "gid", -1, "group id")
	f.IntSliceVar(&groups, "group", nil, "supplementary group; repeatable")
	f.StringVar(&home, "home", "", "the user's home")
	f.StringVar(&name, "name", "", "the user's login name")
	return cmd
}
