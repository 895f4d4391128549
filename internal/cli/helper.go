//go:build unix

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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
	var allow []string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve the helper in the foreground (what the installed service runs)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			uids, err := allowedUIDs(allow)
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return PrivilegeError{errors.New("the helper must run as root: sudo kubefwd helper run, or install it as a service with sudo kubefwd helper install")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			s := &helper.Server{
				Socket: socket, HostsPath: hostsPath, Allow: uids,
				Version: Version(), Log: commandLog(streams), Aliases: loopback.NewAliases(),
			}
			return s.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", helper.DefaultSocket(), "Unix socket to serve")
	f.StringVar(&hostsPath, "hosts-path", hosts.DefaultPath(), "hosts file to keep the clients' entries in")
	f.StringSliceVar(&allow, "allow-user", nil, "user (name or uid) allowed to use the helper; repeatable (default: the user who ran sudo)")
	return cmd
}

func newHelperInstallCommand(streams Streams) *cobra.Command {
	var allow []string
	var hostsPath, root string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install and start the helper as a system service (systemd, launchd), allowing you",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := allowedUIDs(allow); err != nil {
				return err
			}
			if len(allow) == 0 {
				allow = []string{sudoUser().Username} // allowedUIDs found one
			}
			if os.Geteuid() != 0 {
				return PrivilegeError{errors.New("installing the helper needs root: sudo kubefwd helper install")}
			}
			return installHelper(cmd.Context(), streams.Out, root, helper.InstallConfig{
				Binary: helper.InstallBinary, Socket: helper.DefaultSocket(), HostsPath: hostsPath, Allow: allow,
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&allow, "allow-user", nil, "user (name or uid) allowed to use the helper; repeatable (default: the user who ran sudo)")
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
			return uninstallHelper(cmd.Context(), streams.Out, root)
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
		return nil, UsageError{errors.New("say who may use the helper with --allow-user NAME (there is no sudo user to default to)")}
	}
	var uids []int
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			if u, err = user.LookupId(n); err != nil {
				return nil, UsageError{fmt.Errorf("--allow-user %q: no such user", n)}
			}
		}
		uid, err := strconv.Atoi(u.Uid)
		if err != nil {
			return nil, UsageError{fmt.Errorf("--allow-user %q: uid %q is not a number", n, u.Uid)}
		}
		if uid == 0 {
			return nil, UsageError{fmt.Errorf("--allow-user %q: root needs no helper", n)}
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

// installHelper copies this binary to a root-owned place, writes the
// service definition and, unless root is set, starts the service.
func installHelper(ctx context.Context, out io.Writer, root string, c helper.InstallConfig) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the kubefwd binary to install: %w", err)
	}
	if err := copyFileAtomic(self, filepath.Join(root, c.Binary), 0o755); err != nil {
		return fmt.Errorf("install %s: %w", c.Binary, err)
	}
	fmt.Fprintf(out, "installed %s\n", filepath.Join(root, c.Binary))
	var def, defPath string
	switch runtime.GOOS {
	case "darwin":
		def, defPath = helper.LaunchdPlistFile(c), helper.LaunchdPlist
	default:
		def, defPath = helper.SystemdUnitFile(c), helper.SystemdUnit
		// The sandbox makes /etc read-only but for the hosts file and its
		// lock file, which must therefore exist beforehand.
		lock := filepath.Join(root, hosts.LockPath(c.HostsPath))
		if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			return fmt.Errorf("create the hosts lock file: %w", err)
		}
		f.Close()
	}
	if err := writeFileAtomic(filepath.Join(root, defPath), []byte(def), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", defPath, err)
	}
	fmt.Fprintf(out, "wrote %s (allowing %s)\n", filepath.Join(root, defPath), strings.Join(c.Allow, ", "))
	if root != "" {
		return nil
	}
	if err := startService(ctx, out); err != nil {
		return err
	}
	// Wait for the socket, so that the next command can use it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := helper.Info(ictx, c.Socket)
		cancel()
		if err == nil {
			fmt.Fprintf(out, "the helper is running at %s; run kubefwd svc as yourself now\n", c.Socket)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the helper service was started but does not answer at %s: %w", c.Socket, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func startService(ctx context.Context, out io.Writer) error {
	if runtime.GOOS == "darwin" {
		_ = runCommand(ctx, out, "launchctl", "bootout", "system/"+helper.LaunchdLabel) // an older one, if any
		return runCommand(ctx, out, "launchctl", "bootstrap", "system", helper.LaunchdPlist)
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return fmt.Errorf("systemd is not running on this machine, so the helper was installed but not started; start it with: %s",
			strings.Join(helper.InstallConfig{Binary: helper.InstallBinary, Socket: helper.DefaultSocket(), HostsPath: hosts.DefaultPath()}.Args(), " ")+" --allow-user NAME")
	}
	if err := runCommand(ctx, out, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	if err := runCommand(ctx, out, "systemctl", "enable", helper.SystemdName); err != nil {
		return err
	}
	// restart, not start: a reinstall must run the new binary.
	return runCommand(ctx, out, "systemctl", "restart", helper.SystemdName)
}

func uninstallHelper(ctx context.Context, out io.Writer, root string) error {
	if root == "" {
		if runtime.GOOS == "darwin" {
			_ = runCommand(ctx, out, "launchctl", "bootout", "system/"+helper.LaunchdLabel)
		} else if _, err := os.Stat("/run/systemd/system"); err == nil {
			_ = runCommand(ctx, out, "systemctl", "disable", "--now", helper.SystemdName)
		}
	}
	var errs []error
	// The hosts lock file stays: other kubefwd instances may hold it.
	for _, p := range []string{helper.SystemdUnit, helper.LaunchdPlist, helper.InstallBinary} {
		full := filepath.Join(root, p)
		if err := os.Remove(full); err == nil {
			fmt.Fprintf(out, "removed %s\n", full)
		} else if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(filepath.Join(root, filepath.Dir(helper.InstallBinary)))
	if root == "" && runtime.GOOS != "darwin" {
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			_ = runCommand(ctx, out, "systemctl", "daemon-reload")
		}
	}
	return errors.Join(errs...)
}

func runCommand(ctx context.Context, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func copyFileAtomic(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, data, mode)
}

// writeFileAtomic writes a root-owned file by rename, so that a running
// service never sees half of it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
