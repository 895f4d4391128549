//go:build unix

package helper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubefwd/kubefwd/internal/hosts"
)

// systemd installs the helper as a systemd service (Linux).
type systemd struct{}

func (systemd) definition(c InstallConfig) (string, string) { return SystemdUnit, SystemdUnitFile(c) }

// prepare creates the hosts lock file: the sandbox makes /etc read-only
// but for the hosts file and its lock file, which must therefore exist
// beforehand.
func (systemd) prepare(root string, c InstallConfig) error {
	lock := filepath.Join(root, hosts.LockPath(c.HostsPath))
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create the hosts lock file: %w", err)
	}
	return f.Close()
}

func (systemd) running(root string) error {
	if _, err := os.Stat(filepath.Join(root, "/run/systemd/system")); err != nil {
		return errors.New("systemd is not running on this machine")
	}
	return nil
}

func (systemd) start(_ context.Context, run func(string, ...string) error) error {
	if err := run("systemctl", "daemon-reload"); err != nil {
		return err
	}
	if err := run("systemctl", "enable", SystemdName); err != nil {
		return err
	}
	// restart, not start: a reinstall must run the new binary.
	return run("systemctl", "restart", SystemdName)
}

func (systemd) stop(_ context.Context, run func(string, ...string) error) {
	_ = run("systemctl", "disable", "--now", SystemdName)
}

func (systemd) reload(_ context.Context, run func(string, ...string) error) {
	_ = run("systemctl", "daemon-reload")
}
