//go:build linux

package helper

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/test/hostiletest"
)

// TestMain lets a test run this binary again as another user, to play a
// peer the helper does not allow.
func TestMain(m *testing.M) {
	if role := os.Getenv("KUBEFWD_HELPER_TEST_ROLE"); role != "" {
		os.Exit(playRole(role, os.Getenv("KUBEFWD_HELPER_TEST_SOCKET")))
	}
	os.Exit(m.Run())
}

// playRole is what the child does. flood: hold 64 connections, each
// sending 1 MiB with no line break, say "sent", and wait for stdin to
// close. malformed: send one malformed line and print how long the helper
// kept the connection open.
func playRole(role, socket string) int {
	switch role {
	case "flood":
		var conns []net.Conn
		var wg sync.WaitGroup
		for range 64 {
			c, err := net.Dial("unix", socket)
			if err != nil {
				continue
			}
			conns = append(conns, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
				_, _ = c.Write(bytes.Repeat([]byte("x"), 1<<20))
			}()
		}
		time.Sleep(500 * time.Millisecond) // the helper reads what it reads
		fmt.Println("sent")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		for _, c := range conns {
			c.Close()
		}
		return 0
	case "malformed":
		c, err := net.Dial("unix", socket)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		start := time.Now()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Write([]byte("not json\n")); err != nil {
			fmt.Println(err)
			return 1
		}
		_, _ = bufio.NewReader(c).ReadString('\n') // the refusal
		buf := make([]byte, 1)
		_, err = c.Read(buf) // then EOF, or the deadline if it stays open
		fmt.Println(time.Since(start).Milliseconds(), err)
		return 0
	case "helper":
		return serveForTest(socket, os.Getenv("KUBEFWD_HELPER_TEST_HOSTS"))
	}
	return 2
}

// serveForTest is the helper as its service manager would run it: exit 0
// on SIGTERM, non-zero when Serve fails.
func serveForTest(socket, hostsPath string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s := &Server{Socket: socket, HostsPath: hostsPath, Allow: []int{os.Getuid()}, StaleCheck: time.Hour, // the check before each write is tested
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// asNobody runs a copy of this test binary as nobody in role (go test's
// own copy is in a directory only its user can reach).
func asNobody(t *testing.T, role, socket string) *exec.Cmd {
	t.Helper()
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(filepath.Dir(socket)), "helper.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "KUBEFWD_HELPER_TEST_ROLE="+role, "KUBEFWD_HELPER_TEST_SOCKET="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// publicDir is a directory nobody can reach (t.TempDir is private).
func publicDir(t *testing.T) string {
	t.Helper()
	hostiletest.NeedRoot(t)
	return hostiletest.Dir(t, 0o755)
}

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A flood from a user who is not allowed — more connections than all
// allowed users may have, each pushing a long line — neither locks out an
// allowed user nor makes the helper buffer the lines, and its refusals are
// logged, a bounded number of lines.
func TestHostileRefusedFloodDoesNotLockOutAllowed(t *testing.T) {
	dir := publicDir(t)
	var logs lockedBuffer
	h := startServer(t, dir, &Server{
		Allow: []int{os.Getuid()}, MaxPerUser: 8, MaxClients: 8,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err := os.Chmod(dir+"/run", 0o755); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	flood := asNobody(t, "flood", h.socket)
	stdin, _ := flood.StdinPipe()
	stdout, _ := flood.StdoutPipe()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); flood.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "sent\n" {
		t.Fatalf("flood: %q %v", line, err)
	}
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > 16<<20 {
		t.Errorf("the helper's heap grew by %d MiB during the flood", grew>>20)
	}

	// While the flood holds its connections, the allowed user gets in.
	c, err := Dial(t.Context(), h.socket, "mine", nil)
	if err != nil {
		t.Fatalf("an allowed user was locked out by the flood: %v", err)
	}
	defer c.Close()
	if _, err := c.Apply([]hosts.Entry{{Addr: netip.MustParseAddr("127.1.9.9"), Names: []string{"web"}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.hosts(t), "127.1.9.9 web\n") {
		t.Fatalf("hosts file:\n%s", h.hosts(t))
	}
	out := logs.String()
	n := strings.Count(out, "refused")
	if n == 0 || n > 12 {
		t.Errorf("%d refusal log lines for 64 refused connections; want some, rate-limited:\n%s", n, out)
	}
}

// A user who is not allowed and sends a malformed first line gets one
// answer and the connection closes at once.
func TestHostileRefusedMalformedClosesAtOnce(t *testing.T) {
	dir := publicDir(t)
	h := startServer(t, dir, &Server{Allow: []int{os.Getuid()}})
	if err := os.Chmod(dir+"/run", 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := asNobody(t, "malformed", h.socket).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	fields := strings.Fields(string(out))
	ms, _ := strconv.Atoi(fields[0])
	if ms > 1000 || !strings.Contains(string(out), "EOF") {
		t.Fatalf("the connection stayed open %d ms (%s); want it closed at once", ms, out)
	}
}

// One bad entry or name costs only itself: a Service called localhost,
// -d localhost names, an entry on 127.0.0.5 and internet names are
// skipped and reported, and every other name is published — whether the
// client filters first (Client.Apply) or sends everything (a raw client).
func TestHostileBadEntriesAreSkippedOneByOne(t *testing.T) {
	h := startServer(t, t.TempDir(), &Server{Allow: []int{os.Getuid()},
		Policy: Policy{MachineNames: func() []string { return []string{"testbox"} }}})
	entries := []Entry{
		{Addr: "127.1.1.1", Names: []string{"localhost", "localhost.demo", "localhost.demo.svc.cluster.local"}},
		{Addr: "127.1.1.2", Names: []string{"web", "web.localhost", "localhost", "web.demo"}},
		{Addr: "127.0.0.5", Names: []string{"db", "db.demo"}},
		{Addr: "127.1.1.3", Names: []string{"api", "api.example.com", "github.com", "wpad", "testbox", "api.demo.kwok-prod"}},
	}
	wantIn := []string{"127.1.1.1 localhost.demo localhost.demo.svc.cluster.local\n", "127.1.1.2 web web.demo\n", "127.1.1.3 api api.demo.kwok-prod\n"}
	wantSkipped := map[string]string{
		"localhost": "reserved", "web.localhost": "reserved", "db": "127.0.0.0/16", "db.demo": "127.0.0.0/16",
		"api.example.com": "public top-level domain", "github.com": "public top-level domain", "wpad": "wpad", "testbox": "own name",
	}
	check := func(how string, skipped []hosts.Skipped) {
		t.Helper()
		got := h.hosts(t)
		for _, w := range wantIn {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the hosts file lacks %q:\n%s", how, w, got)
			}
		}
		for _, bad := range []string{" db", "127.0.0.5", "github.com", " localhost\n", "wpad", "testbox"} {
			if strings.Contains(strings.TrimPrefix(got, userLines), bad) {
				t.Errorf("%s: the hosts file has %q:\n%s", how, bad, got)
			}
		}
		if len(skipped) != len(wantSkipped) {
			t.Errorf("%s: skipped %v, want %d names", how, skipped, len(wantSkipped))
		}
		for _, s := range skipped {
			if want, ok := wantSkipped[s.Name]; !ok || !strings.Contains(s.Reason, want) {
				t.Errorf("%s: skipped %q for %q, want a reason with %q", how, s.Name, s.Reason, want)
			}
		}
	}

	c, err := Dial(t.Context(), h.socket, "client", nil)
	if err != nil {
		t.Fatal(err)
	}
	var he []hosts.Entry
	for _, e := range entries {
		he = append(he, hosts.Entry{Addr: netip.MustParseAddr(e.Addr), Names: e.Names})
	}
	skipped, err := c.Apply(he)
	if err != nil {
		t.Fatal(err)
	}
	check("client", skipped)
	c.Close()
	waitFor(t, "the client's block to go", func() bool { return h.hosts(t) == userLines })

	r := dialRaw(t, h.socket)
	if resp := r.request(t, Request{Op: OpHello, Instance: "raw"}); !resp.OK {
		t.Fatal(resp.Error)
	}
	resp := r.request(t, Request{Op: OpHosts, Entries: entries})
	if !resp.OK {
		t.Fatalf("the request was refused as a whole: %s", resp.Error)
	}
	check("raw", resp.Skipped)
}

// One user's sessions together keep at most MaxUserBytes of hosts lines:
// beyond, entries are skipped with the reason, and the file stops growing.
func TestHostileUserBytesCap(t *testing.T) {
	h := startServer(t, t.TempDir(), &Server{Allow: []int{os.Getuid()}, MaxUserBytes: 1000})
	many := func(prefix string) []hosts.Entry {
		var out []hosts.Entry
		for i := range 40 {
			out = append(out, hosts.Entry{Addr: netip.AddrFrom4([4]byte{127, 1, 2, byte(i + 1)}),
				Names: []string{fmt.Sprintf("%s%02d", prefix, i), fmt.Sprintf("%s%02d.demo", prefix, i)}})
		}
		return out // 40 lines of 30 to 32 bytes
	}
	var sizes []int
	for i, inst := range []string{"a", "b", "c"} {
		c, err := Dial(t.Context(), h.socket, inst, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		skipped, err := c.Apply(many(inst))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && (len(skipped) == 0 || !strings.Contains(skipped[0].Reason, "at most 1000 bytes of hosts entries per user")) {
			t.Errorf("session %s: skipped %v, want names over the cap", inst, skipped)
		}
		sizes = append(sizes, len(h.hosts(t)))
	}
	if grown := sizes[2] - len(userLines); grown > 1000+3*120 { // the lines, and the markers of three blocks
		t.Errorf("the file grew by %d bytes for one user with a cap of 1000", grown)
	}
	if sizes[2] > sizes[1]+120 {
		t.Errorf("the third session still grew the file: %v", sizes)
	}
}
