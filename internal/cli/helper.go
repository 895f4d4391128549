//go:build unix

package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubefwd/kubefwd/internal/helper"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/loopback"
)

func newHelperCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "helper",
		Short: "The privileged helper: grant root once, then run kubefwd as yourself",
		Long: `The helper is a small root service that binds loopback listeners and keeps
hosts entries for the users it allows, so that kubefwd svc, and everything
in it that talks to Kubernetes, runs as you.

  sudo kubefwd helper install     once: install and start it, allowing you
  kubefwd svc -n NAMESPACE        then, as yourself, from now on`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newHelperRunCommand(streams), newHelperInstallCommand(streams),
		newHelperUninstallCommand(streams), newHelperStatusCommand(streams))
	return cmd
}

func newHelperRunCommand(streams Streams) *cobra.Command {
	var socket, hostsPath string
	var allow, domains []string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve the helper in the foreground (what the installed service runs)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			uids, err := allowedUIDs(allow)
			if err != nil {
				return err
			}
			allowDomains, err := helper.ParseAllowDomains(domains)
			if err != nil {
				return UsageError{Err: err}
			}
			if os.Geteuid() != 0 {
				return PrivilegeError{errors.New("the helper must run as root: sudo kubefwd helper run, or install it as a service with sudo kubefwd helper install")}
			}
			s := &helper.Server{
				Socket: socket, HostsPath: hostsPath, Allow: uids,
				Version: Version(), Log: commandLog(streams), Aliases: loopback.NewAliases(),
				Policy: helper.Policy{AllowDomains: allowDomains},
			}
			return s.Serve(cmd.Context()) // ended by SIGINT or SIGTERM (Main)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", helper.DefaultSocket(), "Unix socket to serve")
	f.StringVar(&hostsPath, "hosts-path", hosts.DefaultPath(), "hosts file to keep the clients' entries in")
	f.StringSliceVar(&allow, "allow-user", nil, "user (name or uid) allowed to use the helper; repeatable (default: the user who ran sudo)")
	f.StringSliceVar(&domains, "allow-domain", nil, allowDomainHelp)
	return cmd
}

const allowDomainHelp = "publish names under this domain even if they look like internet names (a public top-level domain), wpad, isatap or the machine's own; repeatable"

func newHelperInstallCommand(streams Streams) *cobra.Command {
	var allow, domains []string
	var hostsPath, root string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install and start the helper as a system service (systemd, launchd), allowing you",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := allowedUIDs(allow); err != nil {
				return err
			}
			allowDomains, err := helper.ParseAllowDomains(domains)
			if err != nil {
				return UsageError{Err: err}
			}
			if len(allow) == 0 {
				allow = []string{sudoUser().Username} // allowedUIDs found one
			}
			if os.Geteuid() != 0 {
				return PrivilegeError{errors.New("installing the helper needs root: sudo kubefwd helper install")}
			}
			inst := &helper.Installer{Root: root, FilesOnly: root != "", Out: streams.Out}
			return inst.Install(cmd.Context(), helper.InstallConfig{
				Binary: helper.InstallBinary, Socket: helper.DefaultSocket(), HostsPath: hostsPath,
				Allow: allow, AllowDomains: allowDomains,
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&allow, "allow-user", nil, "user (name or uid) allowed to use the helper; repeatable (default: the user who ran sudo)")
	f.StringSliceVar(&domains, "allow-domain", nil, allowDomainHelp)
	f.StringVar(&hostsPath, "hosts-path", hosts.DefaultPath(), "hosts file the helper keeps entries in")
	f.StringVar(&root, "root", "", "install the files under this directory instead of / and do not start anything (for packaging)")
	return cmd
}

func newHelperUninstallCommand(streams Streams) *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the helper service (every client's hosts entries go with it)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return PrivilegeError{errors.New("removing the helper needs root: sudo kubefwd helper uninstall")}
			}
			inst := &helper.Installer{Root: root, FilesOnly: root != "", Out: streams.Out}
			return inst.Uninstall(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "remove the files under this directory instead of / and stop nothing (for packaging)")
	return cmd
}

func newHelperStatusCommand(streams Streams) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether a helper is reachable and whether it allows you",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			info, err := helper.Info(ctx, socket)
			if err != nil {
				if errors.Is(err, helper.ErrUnavailable) {
					return fmt.Errorf("%w; install one with: sudo kubefwd helper install", err)
				}
				return err
			}
			fmt.Fprintf(streams.Out, "helper:      running at %s (kubefwd %s)\n", socket, info.Version)
			fmt.Fprintf(streams.Out, "hosts file:  %s\n", info.HostsPath)
			who := userLabel(info.UID)
			if !info.Allowed {
				fmt.Fprintf(streams.Out, "you:         %s, not allowed\n", who)
				return PrivilegeError{fmt.Errorf("the helper does not allow %s; allow it with: sudo kubefwd helper install --allow-user %s", who, helper.UserName(info.UID))}
			}
			fmt.Fprintf(streams.Out, "you:         %s, allowed: kubefwd svc uses the helper when run without sudo\n", who)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", helper.DefaultSocket(), "the helper's Unix socket")
	return cmd
}

// allowedUIDs resolves --allow-user values (names or uids); none means the
// user who ran sudo.
func allowedUIDs(names []string) ([]int, error) {
	if len(names) == 0 {
		if u := sudoUser(); u != nil {
			uid, _ := strconv.Atoi(u.Uid)
			return []int{uid}, nil
		}
		return nil, UsageError{Err: errors.New("say who may use the helper with --allow-user NAME (there is no sudo user to default to)")}
	}
	var uids []int
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			if u, err = user.LookupId(n); err != nil {
				return nil, UsageError{Err: fmt.Errorf("--allow-user %q: no such user", n)}
			}
		}
		uid, err := strconv.Atoi(u.Uid)
		if err != nil {
			return nil, UsageError{Err: fmt.Errorf("--allow-user %q: uid %q is not a number", n, u.Uid)}
		}
		if uid == 0 {
			return nil, UsageError{Err: fmt.Errorf("--allow-user %q: root needs no helper", n)}
		}
		uids = append(uids, uid)
	}
	return uids, nil
}

func userLabel(uid int) string { return fmt.Sprintf("%s (uid %d)", helper.UserName(uid), uid) }

func commandLog(streams Streams) *slog.Logger {
	if streams.Log != nil {
		return streams.Log
	}
	return slog.New(slog.NewTextHandler(streams.Err, nil))
}
