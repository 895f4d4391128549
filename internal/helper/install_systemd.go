//go:build unix

package helper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// systemd installs the helper as a systemd service (Linux).
type systemd struct{}

func (systemd) definition(c InstallConfig) (string, string) { return SystemdUnit, SystemdUnitFile(c) }

// prepare has nothing to create: every hosts writer locks the directory
// holding the file, which needs no file of its own in the read-only /etc
// of the sandbox.
func (systemd) prepare(string, InstallConfig) error { return nil }

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
