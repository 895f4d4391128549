// Package netns gives a test a private network namespace to change as it
// likes: the machine's own network is never touched. Linux only, as root.
package netns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/test/needs"
)

// NS is a network namespace held open by a sleeping process of its own.
type NS struct {
	// Path is the namespace, for setns or nsenter (/proc/PID/ns/net).
	Path string
	// PID is the process holding it, for `ip link set … netns PID`.
	PID int
}

// New makes a namespace that lives until the test ends, or skips the test
// (see needs) where that cannot be done.
func New(t testing.TB) *NS {
	t.Helper()
	needs.Root(t, "to make a network namespace")
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			needs.Skip(t, "%s is not installed: %v", tool, err)
		}
	}
	// A process, not a thread of ours: the namespace then needs no
	// bookkeeping in the test binary, and ends with the process.
	cmd := exec.Command("unshare", "--net", "sleep", "infinity")
	if err := cmd.Start(); err != nil {
		needs.Skip(t, "cannot start unshare --net: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ns := &NS{Path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), PID: cmd.Process.Pid}
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	// unshare switches namespace just after it starts: wait for that.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, err := os.Readlink(ns.Path); err == nil && got != own {
			break
		}
		if time.Now().After(deadline) {
			needs.Skip(t, "unshare --net made no namespace of its own within 5 s (no permission?)")
		}
	}
	return ns
}

// IP runs ip(8) with args inside the namespace.
func (ns *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns.Path, "ip"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s in the test's namespace: %v: %s", strings.Join(args, " "), err, out)
	}
}
