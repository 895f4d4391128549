//go:build unix

package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/atomicfile"
)

// Runner runs one command of the service manager (systemctl, launchctl),
// its output going to out. Tests record the commands instead.
type Runner func(ctx context.Context, out io.Writer, name string, args ...string) error

// Exec runs the command for real.
func Exec(ctx context.Context, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// serviceManager is what differs between systemd and launchd.
type serviceManager interface {
	// definition is the service file's path and content.
	definition(c InstallConfig) (path, content string)
	// prepare creates what the service needs beforehand, under root.
	prepare(root string, c InstallConfig) error
	// running reports whether the manager runs on this machine.
	running(root string) error
	start(ctx context.Context, run func(name string, args ...string) error) error
	stop(ctx context.Context, run func(name string, args ...string) error)
	// reload runs after the service file is removed.
	reload(ctx context.Context, run func(name string, args ...string) error)
}

// Installer installs the helper as a system service: the binary copied to
// a root-owned place, the service definition written, the service
// started. Its zero value installs on this machine for real.
type Installer struct {
	// Root is prepended to every file path ("" is /).
	Root string
	// FilesOnly writes and removes files and runs no command (packaging).
	FilesOnly bool
	// Run runs the service manager's commands; nil is Exec.
	Run Runner
	// Binary is the kubefwd to install; "" is this executable.
	Binary string
	Out    io.Writer

	manager serviceManager // nil: this platform's
}

func (i *Installer) defaults() {
	if i.Run == nil {
		i.Run = Exec
	}
	if i.Out == nil {
		i.Out = io.Discard
	}
	if i.manager == nil {
		i.manager = platformManager()
	}
}

func (i *Installer) path(p string) string { return filepath.Join(i.Root, p) }

func (i *Installer) runner(ctx context.Context) func(string, ...string) error {
	return func(name string, args ...string) error { return i.Run(ctx, i.Out, name, args...) }
}

// Install copies the binary, writes the service definition and, unless
// FilesOnly, (re)starts the service and waits until it answers.
func (i *Installer) Install(ctx context.Context, c InstallConfig) error {
	i.defaults()
	self := i.Binary
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("cannot find the kubefwd binary to install: %w", err)
		}
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("read the kubefwd binary to install: %w", err)
	}
	if err := writeRootFile(i.path(c.Binary), data, 0o755); err != nil {
		return fmt.Errorf("install %s: %w", c.Binary, err)
	}
	fmt.Fprintf(i.Out, "installed %s\n", i.path(c.Binary))
	if err := i.manager.prepare(i.Root, c); err != nil {
		return err
	}
	defPath, def := i.manager.definition(c)
	if err := writeRootFile(i.path(defPath), []byte(def), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", defPath, err)
	}
	allowed := strings.Join(c.Allow, ", ")
	if len(c.AllowDomains) > 0 {
		allowed += "; names under " + strings.Join(c.AllowDomains, ", ")
	}
	fmt.Fprintf(i.Out, "wrote %s (allowing %s)\n", i.path(defPath), allowed)
	if i.FilesOnly {
		return nil
	}
	if err := i.manager.running(i.Root); err != nil {
		return fmt.Errorf("%w, so the helper was installed but not started; start it with: %s", err, strings.Join(c.Args(), " "))
	}
	if err := i.manager.start(ctx, i.runner(ctx)); err != nil {
		return err
	}
	// Wait for the socket, so that the next command can use it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := Info(ictx, c.Socket)
		cancel()
		if err == nil {
			fmt.Fprintf(i.Out, "the helper is running at %s; run kubefwd svc as yourself now\n", c.Socket)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the helper service was started but does not answer at %s: %w", c.Socket, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Uninstall stops the service (unless FilesOnly) and removes its files.
// The hosts lock file stays: other kubefwd instances may hold it.
func (i *Installer) Uninstall(ctx context.Context) error {
	i.defaults()
	managed := !i.FilesOnly && i.manager.running(i.Root) == nil
	if managed {
		i.manager.stop(ctx, i.runner(ctx))
	}
	var errs []error
	defPath, _ := i.manager.definition(InstallConfig{})
	for _, p := range []string{defPath, InstallBinary} {
		full := i.path(p)
		if err := os.Remove(full); err == nil {
			fmt.Fprintf(i.Out, "removed %s\n", full)
		} else if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(i.path(filepath.Dir(InstallBinary)))
	if managed {
		i.manager.reload(ctx, i.runner(ctx))
	}
	return errors.Join(errs...)
}

// writeRootFile writes a root-owned file atomically, so that a running
// service never sees half of it, with exactly mode (atomicfile keeps an
// existing file's mode, and a binary must be 0755 whatever it was).
func writeRootFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}
