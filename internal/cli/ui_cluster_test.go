//go:build linux

package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// screenTerm is the real binary in a pseudo-terminal, its screen kept by a
// terminal emulator: the test reads what a user would see.
type screenTerm struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	mu   sync.Mutex
	emu  *vt.Emulator
	done chan error
}

func startTerm(t *testing.T, env []string, name string, args ...string) *screenTerm {
	t.Helper()
	const cols, rows = 140, 40
	cmd := exec.Command(name, args...)
	cmd.Env = append(env, "TERM=xterm-256color", "COLUMNS=", "LINES=")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	tm := &screenTerm{t: t, cmd: cmd, pty: f, emu: vt.NewEmulator(cols, rows), done: make(chan error, 1)}
	go func() { // the program's output drawn on the screen
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				tm.mu.Lock()
				_, _ = tm.emu.Write(buf[:n])
				tm.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { _, _ = io.Copy(f, tm.emu) }() // the terminal's answers to its queries
	go func() { tm.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-tm.done:
		case <-time.After(10 * time.Second):
		}
		f.Close()
		// The emulator is not closed: its Close writes a flag its Read
		// checks without a lock, which the copying goroutine may be in.
		// That goroutine stays blocked on the emulator's idle pipe until
		// the test binary exits.
	})
	return tm
}

func (tm *screenTerm) screen() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.emu.String()
}

// wait waits until the screen shows what cond looks for.
func (tm *screenTerm) wait(what string, cond func(string) bool) string {
	tm.t.Helper()
	var s string
	err := cluster.Poll(tm.t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		s = tm.screen()
		return cond(s), nil
	})
	if err != nil {
		tm.t.Fatalf("the screen never showed %s:\n%s", what, s)
	}
	return s
}

func (tm *screenTerm) waitText(text string) string {
	tm.t.Helper()
	return tm.wait(`"`+text+`"`, func(s string) bool { return strings.Contains(s, text) })
}

func (tm *screenTerm) keys(s ...string) {
	tm.t.Helper()
	for _, k := range s {
		if _, err := tm.pty.WriteString(k); err != nil {
			tm.t.Fatal(err)
		}
		// One key per read, as typed; a lone Esc needs a pause, or the key
		// after it reads as Alt+key.
		pause := 50 * time.Millisecond
		if k == "\x1b" {
			pause = 500 * time.Millisecond
		}
		time.Sleep(pause)
	}
}

// line is the screen line that contains all of parts.
func line(screen string, parts ...string) string {
	for _, l := range strings.Split(screen, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// TestLiveView drives `kubefwd svc --tui` as a user would: the table shows
// web active with its address; a filter and Enter show its names and pods;
// its pod's log follows; pausing stops its name answering and resuming
// brings it back; the namespace browser adds demo2 and web.demo2 answers;
// q stops kubefwd and leaves the hosts file clean.
func TestLiveView(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	const userLines = "127.0.0.1 localhost\n"
	if err := os.WriteFile(hostsPath, []byte(userLines), 0o644); err != nil {
		t.Fatal(err)
	}
	tm := startTerm(t, env, kubefwdBinary(t), "svc", "--tui", "-c", c.Kubeconfig, "--hosts-path", hostsPath,
		"--state-file", filepath.Join(base, "state.json"), "-n", "demo", "--instance", "view")
	s := tm.wait("web active", func(s string) bool { return line(s, " demo/web ", "active") != "" })
	addr := clustertest.HostsAddr(hostsPath, "web")
	if addr == "" || !strings.Contains(line(s, " demo/web ", "active"), addr) {
		t.Fatalf("web's row does not show its address %q:\n%s", addr, s)
	}
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")
	if !strings.Contains(s, "namespaces demo") || line(s, "q quit") == "" {
		t.Errorf("header or footer missing:\n%s", s)
	}

	// Filter, then details: every name and the pods.
	tm.keys("/", "w", "e", "b", "\r")
	tm.wait("only web", func(s string) bool { return line(s, " demo/web ", "active") != "" && line(s, " demo/api ", "") == "" })
	tm.keys("\r")
	s = tm.waitText("names      web, web.demo")
	if line(s, "web-", "ready") == "" || !strings.Contains(s, "connect    web:80") {
		t.Errorf("details lack pods or connection strings:\n%s", s)
	}

	// The pod's log follows: a request made now shows up.
	tm.keys("l")
	tm.waitText("following")
	if _, err := clustertest.Get(addr, 80); err != nil {
		t.Fatal(err)
	}
	tm.waitText("GET / from")

	// Pause: the name stops answering; resume: it answers again.
	tm.keys("p")
	tm.wait("web paused", func(s string) bool { return line(s, "state", "paused") != "" })
	err := cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		_, err := clustertest.Get(addr, 80)
		return err != nil, nil
	})
	if err != nil {
		t.Fatal("web still answers while paused")
	}
	tm.keys("p")
	tm.wait("web active again", func(s string) bool { return line(s, "state", "active") != "" })
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")

	// The namespace browser adds demo2.
	tm.keys("\x1b", "\x1b") // back to the table, filter cleared
	tm.wait("the whole table", func(s string) bool { return line(s, " demo/api ", "") != "" })
	tm.keys("n")
	tm.waitText("[x] demo ")
	for range 40 {
		if strings.Contains(line(tm.screen(), "▸"), "[ ] demo2") {
			break
		}
		tm.keys("j")
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(line(tm.screen(), "▸"), "[ ] demo2") {
		t.Fatalf("could not select demo2 in the browser:\n%s", tm.screen())
	}
	tm.keys(" ")
	tm.waitText("[x] demo2")
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2")

	// q on the table stops kubefwd; its hosts entries go.
	tm.keys("\x1b", "q")
	select {
	case err := <-tm.done:
		if err != nil {
			t.Errorf("kubefwd svc --tui exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("q did not stop kubefwd:\n%s", tm.screen())
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != userLines {
		t.Errorf("hosts file after q:\n%s", data)
	}
}

// TestUIAsInvokingUser: `kubefwd ui` run by nobody attaches to a root
// instance started for nobody (sudo), shows and steers it; a third user's
// view is refused and says so; when the instance stops the view says so,
// and attaches again when it is back.
func TestUIAsInvokingUser(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	n := setupForNobody(t, c)
	env, base, hostsPath, kubeconfig := n.env, n.base, n.hostsPath, n.kubeconfig
	in := startInstanceKubeconfig(t, kubeconfig, env, hostsPath, filepath.Join(base, "state.json"), "-n", "demo", "--instance", "shared")
	clustertest.WaitAnswers(t, hostsPath, "web", "demo", in.stderr)

	nobody := startTerm(t, env, "runuser", "-u", "nobody", "--", kubefwdBinary(t), "ui")
	s := nobody.wait("web active", func(s string) bool { return line(s, " demo/web ", "active") != "" })
	if !strings.Contains(line(s, " demo/web ", "active"), clustertest.HostsAddr(hostsPath, "web")) {
		t.Errorf("web's row lacks its address:\n%s", s)
	}
	nobody.keys("/", "w", "e", "b", "\r", "p")
	nobody.wait("web paused by nobody", func(s string) bool { return line(s, " demo/web ", "paused") != "" })
	nobody.keys("p")
	nobody.wait("web active again", func(s string) bool { return line(s, " demo/web ", "active") != "" })

	sock := filepath.Join(base, "kubefwd-65534", "shared.sock")
	daemon := startTerm(t, env, "runuser", "-u", "daemon", "--", kubefwdBinary(t), "ui", "--instance", sock)
	s = daemon.waitText("permission denied")
	if line(s, " demo/web ", "active") != "" {
		t.Errorf("daemon sees nobody's forwards:\n%s", s)
	}

	// The instance stops: nobody's view says so, and keeps running.
	if out, err := kubefwdAs(t, env, "nobody", "stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	nobody.waitText("not attached")
	select {
	case err := <-nobody.done:
		t.Fatalf("the view ended with its instance: %v", err)
	default:
	}
	// One runs again under the same name: the view attaches to it.
	again := startInstanceKubeconfig(t, kubeconfig, env, hostsPath, filepath.Join(base, "state.json"), "-n", "demo", "--instance", "shared")
	clustertest.WaitAnswers(t, hostsPath, "web", "demo", again.stderr)
	nobody.wait("the view attached again", func(s string) bool {
		return !strings.Contains(s, "not attached") && line(s, " demo/web ", "active") != ""
	})
	nobody.keys("\x1b", "q")
	select {
	case err := <-nobody.done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Errorf("ui: %v", err)
		} else if err != nil {
			t.Errorf("ui exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("q did not end kubefwd ui")
	}
}
