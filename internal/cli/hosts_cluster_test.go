package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// Another program rewriting the hosts file (a VPN client, a network
// manager regenerating it) may drop kubefwd's block: kubefwd notices and
// writes it back, keeping what the other program wrote; an edit that keeps
// the block changes nothing of kubefwd's. Whether the file is replaced by
// a rename or written in place, the names come back.
func TestHostsBlockRestoredAfterAnotherProgramRewrites(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "rewrite", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, c, hostsPath, filepath.Join(dir, "state.json"), "-n", "rewrite")
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")

	// A regenerated file by rename, then one written in place: both without
	// kubefwd's block, each with a line of the other program's.
	user := "127.0.0.1 localhost\n10.9.9.1 vpn-one\n"
	tmp := filepath.Join(dir, "hosts.vpn")
	if err := os.WriteFile(tmp, []byte(user), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, hostsPath); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, hostsPath, func(s string) bool {
		return strings.Contains(s, " web ") && strings.HasPrefix(s, user)
	}, "got kubefwd's block back after a rename, with the other program's line")

	user += "10.9.9.2 vpn-two\n"
	if err := os.WriteFile(hostsPath, []byte(user), 0o644); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, hostsPath, func(s string) bool {
		return strings.Contains(s, " web ") && strings.HasPrefix(s, user)
	}, "got kubefwd's block back after a write in place, with the other program's lines")

	if err := in.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := in.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v\n%s", err, in.stderr.String())
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != user {
		t.Errorf("hosts file after the stop:\n%q\nwant the other program's\n%q", data, user)
	}
}
