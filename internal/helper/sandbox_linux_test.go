package helper

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/test/needs"
)

// restartLoop stands in for systemd: each run of the helper gets a fresh
// private mount namespace in which, as ProtectSystem=strict with
// ReadWritePaths=/etc/hosts makes it, the directory of the hosts file is
// read-only and the file itself is bind-mounted
// writable; a run that fails is restarted (Restart=on-failure), a clean
// exit ends the loop.
const restartLoop = `
while :; do
	unshare -m sh -c '
		set -e
		mount --bind "$ETC" "$ETC"
		mount -o remount,bind,ro "$ETC"
		for f in hosts; do
			mount --bind "$ETC/$f" "$ETC/$f"
			mount -o remount,bind,rw "$ETC/$f"
		done
		exec "$BIN" -test.run=^$'
	rc=$?
	[ "$rc" -eq 0 ] && break
	echo "restart-loop: the helper exited with $rc; restarting" >&2
	sleep 0.3
done
`

// When anything replaces the hosts file by rename (sed -i, an editor,
// NetworkManager), the sandboxed helper's bind mount keeps the old file.
// The helper notices before writing, exits, is restarted with a fresh view,
// and its clients' entries land in the new file; a client that stops has
// its block removed from it.
func TestHostileHostsReplacedUnderSandbox(t *testing.T) {
	needs.Root(t, "for mount namespaces")
	if _, err := exec.LookPath("unshare"); err != nil {
		needs.Skip(t, "needs unshare (util-linux)")
	}
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	hostsPath := filepath.Join(etc, "hosts")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string]string{hostsPath: userLines, hosts.LockPath(hostsPath): ""} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(dir, "run", "helper.sock")

	var logs lockedBuffer
	loop := exec.Command("sh", "-c", restartLoop)
	loop.Env = append(os.Environ(), "ETC="+etc, "BIN="+os.Args[0],
		"KUBEFWD_HELPER_TEST_ROLE=helper", "KUBEFWD_HELPER_TEST_SOCKET="+socket, "KUBEFWD_HELPER_TEST_HOSTS="+hostsPath)
	loop.Stdout, loop.Stderr = &logs, &logs
	loop.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	loopDone := make(chan error, 1)
	go func() { loopDone <- loop.Wait() }()
	defer func() {
		_ = syscall.Kill(-loop.Process.Pid, syscall.SIGTERM)
		select {
		case <-loopDone:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-loop.Process.Pid, syscall.SIGKILL)
			<-loopDone
		}
		t.Logf("helper log:\n%s", logs.String())
	}()

	read := func() string {
		data, err := os.ReadFile(hostsPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	var c *Client
	waitFor(t, "the helper", func() bool {
		var err error
		c, err = Dial(t.Context(), socket, "sandboxed", nil)
		return err == nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	kept := make(chan struct{})
	go func() { c.Keep(ctx); close(kept) }()
	defer func() { cancel(); <-kept }()

	web := hosts.Entry{Addr: netip.MustParseAddr("127.1.3.1"), Names: []string{"web", "web.demo"}}
	if _, err := c.Apply([]hosts.Entry{web}); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.Contains(got, "127.1.3.1 web web.demo\n") {
		t.Fatalf("hosts file:\n%s", got)
	}

	// Replace the file by rename, as sed -i does, keeping what it held.
	next := read() + "10.9.9.9 added-by-sed\n"
	tmp := filepath.Join(etc, ".hosts.sed")
	if err := os.WriteFile(tmp, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, hostsPath); err != nil {
		t.Fatal(err)
	}

	// A namespace more: the names reach the new file, through a restart.
	api := hosts.Entry{Addr: netip.MustParseAddr("127.1.3.2"), Names: []string{"api", "api.demo2"}}
	_, _ = c.Apply([]hosts.Entry{web, api}) // may fail while the helper restarts; it is sent again
	waitFor(t, "the new names in the replaced file", func() bool {
		got := read()
		return strings.Contains(got, "127.1.3.2 api api.demo2\n") && strings.Contains(got, "127.1.3.1 web web.demo\n")
	})
	if got := read(); !strings.Contains(got, "10.9.9.9 added-by-sed\n") || strings.Count(got, "# kubefwd begin") != 1 {
		t.Fatalf("after the restart, the hosts file:\n%s", got)
	}

	// The client stops: its block goes from the file that is there now.
	cancel()
	<-kept
	waitFor(t, "the block to go", func() bool { return read() == userLines+"10.9.9.9 added-by-sed\n" })

	log := logs.String()
	for _, want := range []string{"the hosts file was replaced", "restart-loop: the helper exited with 1"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if i := strings.Index(log, "the hosts file was replaced"); i >= 0 {
		if j := strings.Index(log[i:], "restart-loop:"); j >= 0 && bytes.Contains([]byte(log[i:i+j]), []byte("its hosts entries are removed")) {
			t.Errorf("the stale helper claimed to remove entries it could not:\n%s", log)
		}
	}
}
