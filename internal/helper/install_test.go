//go:build linux

package helper

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type recorder struct{ cmds []string }

func (r *recorder) run(_ context.Context, _ io.Writer, name string, args ...string) error {
	r.cmds = append(r.cmds, strings.Join(append([]string{name}, args...), " "))
	return nil
}

func TestInstallSystemd(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil { // systemd runs
		t.Fatal(err)
	}
	// The "service" the commands would start: a helper at the socket.
	h := startHelper(t)
	rec := &recorder{}
	inst := &Installer{Root: root, Run: rec.run}
	c := InstallConfig{Binary: InstallBinary, Socket: h.socket, HostsPath: "/etc/hosts", Allow: []string{"alice"}, AllowDomains: []string{"dev"}}
	if err := inst.Install(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl daemon-reload", "systemctl enable " + SystemdName, "systemctl restart " + SystemdName}
	if !slices.Equal(rec.cmds, want) {
		t.Errorf("install ran %q, want %q", rec.cmds, want)
	}
	unit, err := os.ReadFile(filepath.Join(root, SystemdUnit))
	if err != nil || !strings.Contains(string(unit), " --allow-user alice --allow-domain dev\n") {
		t.Errorf("unit (%v):\n%s", err, unit)
	}
	if info, err := os.Stat(filepath.Join(root, InstallBinary)); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("installed binary: %v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/hosts.kubefwd.lock")); err == nil {
		t.Errorf("a lock file was created: writers lock the directory, which needs none")
	}

	rec.cmds = nil
	if err := inst.Uninstall(t.Context()); err != nil {
		t.Fatal(err)
	}
	want = []string{"systemctl disable --now " + SystemdName, "systemctl daemon-reload"}
	if !slices.Equal(rec.cmds, want) {
		t.Errorf("uninstall ran %q, want %q", rec.cmds, want)
	}
	for _, p := range []string{SystemdUnit, InstallBinary} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
}

// FilesOnly (--root, for packaging) writes the files and runs nothing;
// without systemd, install says how to start the helper and runs nothing.
func TestInstallRunsNothingWithoutAManager(t *testing.T) {
	rec := &recorder{}
	root := t.TempDir()
	c := InstallConfig{Binary: InstallBinary, Socket: "/run/kubefwd/helper.sock", HostsPath: "/etc/hosts", Allow: []string{"alice"}}
	if err := (&Installer{Root: root, FilesOnly: true, Run: rec.run}).Install(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	err := (&Installer{Root: root, Run: rec.run}).Install(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "systemd is not running") || !strings.Contains(err.Error(), "helper run") {
		t.Errorf("install without systemd: %v", err)
	}
	if err := (&Installer{Root: root, Run: rec.run}).Uninstall(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(rec.cmds) != 0 {
		t.Errorf("ran %q", rec.cmds)
	}
}

func TestInstallLaunchd(t *testing.T) {
	h := startHelper(t)
	rec := &recorder{}
	root := t.TempDir()
	inst := &Installer{Root: root, Run: rec.run, manager: launchd{}}
	c := InstallConfig{Binary: InstallBinary, Socket: h.socket, HostsPath: "/etc/hosts", Allow: []string{"alice"}, AllowDomains: []string{"dev"}}
	if err := inst.Install(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := inst.Uninstall(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"launchctl bootout system/" + LaunchdLabel, "launchctl bootstrap system " + LaunchdPlist, "launchctl bootout system/" + LaunchdLabel}
	if !slices.Equal(rec.cmds, want) {
		t.Errorf("ran %q, want %q", rec.cmds, want)
	}
}
