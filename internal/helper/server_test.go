//go:build linux

package helper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/test/needs"
)

const userLines = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.1.2.3 mine # the user's own\n"

type testHelper struct {
	socket, hostsPath string
	stop              func()
}

// startHelper serves a helper on a temporary socket and hosts file,
// allowing allow (default: this test's own user).
func startHelper(t *testing.T, allow ...int) *testHelper {
	t.Helper()
	if len(allow) == 0 {
		allow = []int{os.Getuid()}
	}
	return startServer(t, t.TempDir(), &Server{Allow: allow, MaxPerUser: 4})
}

// startServer serves s with its socket and hosts file in dir.
func startServer(t *testing.T, dir string, s *Server) *testHelper {
	t.Helper()
	h := &testHelper{socket: filepath.Join(dir, "run", "helper.sock"), hostsPath: filepath.Join(dir, "hosts")}
	if err := os.WriteFile(h.hostsPath, []byte(userLines), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.Socket, s.HostsPath, s.Version = h.socket, h.hostsPath, "test"
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			h.stop()
		}
	})
	waitFor(t, "the helper socket", func() bool {
		c, err := net.Dial("unix", h.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return h
}

func (h *testHelper) hosts(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(h.hostsPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// raw is a client that speaks the protocol by hand, as a hostile one would.
type raw struct {
	c *net.UnixConn
	r *bufio.Reader
}

func dialRaw(t *testing.T, socket string) *raw {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{c: c.(*net.UnixConn), r: bufio.NewReader(c)}
}

// send writes line as is and reads the answer; ok is false when the helper
// closed the connection instead.
func (r *raw) send(t *testing.T, line string) (resp Response, ok bool) {
	t.Helper()
	_ = r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(line + "\n")); err != nil {
		return Response{}, false
	}
	got, err := r.r.ReadBytes('\n')
	if err != nil {
		return Response{}, false
	}
	if err := json.Unmarshal(got, &resp); err != nil {
		t.Fatalf("malformed answer %q: %v", got, err)
	}
	return resp, true
}

func (r *raw) request(t *testing.T, req Request) Response {
	t.Helper()
	data, _ := json.Marshal(req)
	resp, ok := r.send(t, string(data))
	if !ok {
		t.Fatalf("the helper closed the connection on %s", data)
	}
	return resp
}

func TestListenHandsOverASocket(t *testing.T) {
	h := startHelper(t)
	c, err := Dial(t.Context(), h.socket, "one", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Port 0 is refused; find a free port the way a user would pick one.
	probe, err := net.Listen("tcp", "127.1.99.7:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(probe.Addr().String())
	probe.Close()

	ln, err := c.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != addr.String() {
		t.Fatalf("listener on %s, want %s", ln.Addr(), addr)
	}
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.Write([]byte("hello"))
			conn.Close()
		}
	}()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := conn.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	conn.Close()

	// The same address and port again: the kernel says no, and the helper
	// says so.
	if _, err := c.Listen(addr); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second listen: %v", err)
	}
}

// A UDP socket, bound by the helper on a checked loopback address, works
// in the client's hands; a second one on the same address and port is
// refused by the kernel, and a TCP listener there is another socket.
func TestListenPacketHandsOverASocket(t *testing.T) {
	h := startHelper(t)
	c, err := Dial(t.Context(), h.socket, "one", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	probe, err := net.ListenPacket("udp", "127.1.99.8:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(probe.LocalAddr().String())
	probe.Close()

	pc, err := c.ListenPacket(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if pc.LocalAddr().String() != addr.String() {
		t.Fatalf("socket on %s, want %s", pc.LocalAddr(), addr)
	}
	go func() {
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			pc.WriteTo(append([]byte("re: "), buf[:n]...), from)
		}
	}()
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("hi"))
	buf := make([]byte, 10)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "re: hi" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := c.ListenPacket(addr); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second UDP socket: %v", err)
	}
	ln, err := c.Listen(addr)
	if err != nil {
		t.Fatalf("TCP on the UDP socket's port: %v", err)
	}
	ln.Close()
}

func TestHostsBlockFollowsTheSession(t *testing.T) {
	h := startHelper(t)
	c, err := Dial(t.Context(), h.socket, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := c.Apply([]hosts.Entry{
		{Addr: netip.MustParseAddr("127.1.27.1"), Names: []string{"web", "web.demo"}},
		{Addr: netip.MustParseAddr("127.1.27.2"), Names: []string{"mine", "db"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Name != "mine" {
		t.Errorf("skipped %v, want the user's own name 'mine'", skipped)
	}
	got := h.hosts(t)
	if !strings.HasPrefix(got, userLines) || !strings.Contains(got, "127.1.27.1 web web.demo\n") || !strings.Contains(got, "127.1.27.2 db\n") {
		t.Fatalf("hosts file:\n%s", got)
	}
	blocks := hosts.Blocks([]byte(got))
	id := "u" + strconv.Itoa(os.Getuid()) + "-web"
	if owner, ok := blocks[id]; !ok || !strings.Contains(owner, "pid="+strconv.Itoa(os.Getpid())) {
		t.Fatalf("blocks %v: want %s owned by this process", blocks, id)
	}

	// The connection closing, for whatever reason, removes the block.
	c.Close()
	waitFor(t, "the block to go", func() bool { return h.hosts(t) == userLines })
}

func TestRefusals(t *testing.T) {
	h := startHelper(t)
	r := dialRaw(t, h.socket)
	if resp := r.request(t, Request{Op: OpListen, Addr: "127.1.1.1", Port: 8080}); resp.OK || !strings.Contains(resp.Error, "before hello") {
		t.Fatalf("listen before hello: %+v", resp)
	}
	for _, inst := range []string{"", "../etc", "Web", "-x", "a b", strings.Repeat("a", 64)} {
		if resp := r.request(t, Request{Op: OpHello, Instance: inst}); resp.OK {
			t.Fatalf("hello %q accepted", inst)
		}
	}
	if resp := r.request(t, Request{Op: OpHello, Instance: "x1"}); !resp.OK {
		t.Fatalf("hello: %+v", resp)
	}
	if resp := r.request(t, Request{Op: OpHello, Instance: "x2"}); resp.OK {
		t.Fatal("a second hello on one connection was accepted")
	}
	long := strings.Repeat("a", 300)
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"wildcard", Request{Op: OpListen, Addr: "0.0.0.0", Port: 80}, "outside 127.0.0.0/8"},
		{"private net", Request{Op: OpListen, Addr: "10.0.0.1", Port: 80}, "outside 127.0.0.0/8"},
		{"ipv6 any", Request{Op: OpListen, Addr: "::", Port: 80}, "want an IPv4 address"},
		{"ipv6 prefix", Request{Op: OpListen, Addr: "::/0", Port: 80}, "want an IPv4 address"},
		{"mapped", Request{Op: OpListen, Addr: "::ffff:127.1.1.1", Port: 80}, "want an IPv4 address"},
		{"system", Request{Op: OpListen, Addr: "127.0.0.1", Port: 53}, "machine's own services"},
		{"system, UDP", Request{Op: OpListen, Network: "udp", Addr: "127.0.0.53", Port: 53}, "machine's own services"},
		{"UDP wildcard", Request{Op: OpListen, Network: "udp", Addr: "0.0.0.0", Port: 53}, "outside 127.0.0.0/8"},
		{"unknown network", Request{Op: OpListen, Network: "unixgram", Addr: "127.1.1.1", Port: 53}, "want tcp or udp"},
		{"debian hostname address", Request{Op: OpListen, Addr: "127.0.1.1", Port: 80}, "machine's own services"},
		{"system /16", Request{Op: OpAlias, Addr: "127.0.200.1"}, "machine's own services"},
		{"broadcast", Request{Op: OpListen, Addr: "127.255.255.255", Port: 80}, "broadcast"},
		{"host name", Request{Op: OpListen, Addr: "localhost", Port: 80}, "want an IPv4 address"},
		{"port 0", Request{Op: OpListen, Addr: "127.1.1.1", Port: 0}, "want 1-65535"},
		{"port too big", Request{Op: OpListen, Addr: "127.1.1.1", Port: 70000}, "want 1-65535"},
		{"too many entries", Request{Op: OpHosts, Entries: make([]Entry, MaxEntries+1)}, "at most"},
		{"unknown op", Request{Op: "exec"}, "unknown operation"},
		{"alias outside", Request{Op: OpAlias, Addr: "192.168.1.1"}, "outside 127.0.0.0/8"},
	}
	for _, tc := range cases {
		resp := r.request(t, tc.req)
		if resp.OK || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("%s: got %+v, want an error with %q", tc.name, resp, tc.want)
		}
		if strings.ContainsAny(resp.Error, "\n\r") {
			t.Errorf("%s: the error echoes a line break: %q", tc.name, resp.Error)
		}
	}
	// A hosts request is not refused for its bad names and entries: each is
	// skipped, with its reason, and nothing of them reaches the file.
	skips := []struct {
		name, addr, host, want string
	}{
		{"newline", "127.1.1.1", "a\nb", "only letters"},
		{"space", "127.1.1.1", "a b", "only letters"},
		{"hash", "127.1.1.1", "a#b", "only letters"},
		{"300 chars", "127.1.1.1", long, "want 1 to 253"},
		{"long label", "127.1.1.1", strings.Repeat("b", 64) + ".x", "1 to 63"},
		{"leading dash", "127.1.1.1", "-rf", "may not start or end"},
		{"empty label", "127.1.1.1", "a..b", "1 to 63"},
		{"localhost", "127.1.1.1", "localhost", "reserved"},
		{"non-ascii", "127.1.1.1", "wéb", "only letters"},
		{"entry outside loopback", "10.0.0.1", "web", "outside 127.0.0.0/8"},
		{"entry on the hostname address", "127.0.1.1", "web", "127.0.0.0/16"},
	}
	for _, tc := range skips {
		resp := r.request(t, hostsReq(tc.addr, tc.host))
		if !resp.OK || len(resp.Skipped) != 1 || resp.Skipped[0].Name != clip(tc.host) || !strings.Contains(resp.Skipped[0].Reason, tc.want) {
			t.Errorf("%s: got %+v, want %q skipped with a reason with %q", tc.name, resp, tc.host, tc.want)
		}
		if strings.ContainsAny(resp.Skipped[0].Reason, "\n\r") {
			t.Errorf("%s: the reason echoes a line break: %q", tc.name, resp.Skipped[0].Reason)
		}
	}
	if resp := r.request(t, hostsReq("127.1.1.1", strings.Split(strings.Repeat("n,", 33), ",")[:33]...)); !resp.OK || len(resp.Skipped) != 1 {
		t.Errorf("33 names: got %+v, want the 33rd skipped", resp)
	}
	if resp := r.request(t, Request{Op: OpHosts}); !resp.OK {
		t.Errorf("emptying the block: %+v", resp)
	}

	// Malformed messages are refused and the session goes on.
	for _, line := range []string{`{"op":"ping","path":"/etc/shadow"}`, `{"op":"ping"} {"op":"ping"}`, `not json`, `{"op":"hosts","entries":{}}`} {
		if resp, ok := r.send(t, line); !ok || resp.OK {
			t.Errorf("%s: got %+v (open %v), want a refusal", line, resp, ok)
		}
	}
	if resp := r.request(t, Request{Op: OpPing}); !resp.OK {
		t.Fatalf("the session did not survive refusals: %+v", resp)
	}
	if got := h.hosts(t); got != userLines {
		t.Fatalf("refused requests changed the hosts file:\n%s", got)
	}
	// A message over the limit ends the connection.
	if _, ok := r.send(t, `{"op":"ping","addr":"`+strings.Repeat("x", MaxMessage)+`"}`); ok {
		if _, ok := r.send(t, `{"op":"ping"}`); ok {
			t.Fatal("an oversized message did not end the connection")
		}
	}
}

func hostsReq(addr string, names ...string) Request {
	return Request{Op: OpHosts, Entries: []Entry{{Addr: addr, Names: names}}}
}

func TestUserNotAllowed(t *testing.T) {
	h := startHelper(t, 65534) // only nobody; this test's user is someone else
	if os.Getuid() == 65534 {
		needs.Skip(t, "runs as nobody, the only allowed user here")
	}
	info, err := Info(t.Context(), h.socket)
	if err != nil || info.Allowed || info.UID != os.Getuid() {
		t.Fatalf("info: %+v, %v", info, err)
	}
	_, err = Dial(t.Context(), h.socket, "web", nil)
	var refused NotAllowedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "is not allowed") {
		t.Fatalf("dial: %v", err)
	}
	r := dialRaw(t, h.socket)
	if resp, ok := r.send(t, `{"op":"listen","addr":"127.1.1.1","port":80}`); ok && resp.OK {
		t.Fatal("a user not allowed could listen")
	}
	if got := h.hosts(t); got != userLines {
		t.Fatalf("hosts file changed:\n%s", got)
	}
}

// No client can name another's block: the block is the user's and the
// instance's, an instance that is connected cannot be taken, and the hosts
// request has no block to name.
func TestOtherClientsBlocks(t *testing.T) {
	h := startHelper(t)
	a, err := Dial(t.Context(), h.socket, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Apply([]hosts.Entry{{Addr: netip.MustParseAddr("127.1.1.1"), Names: []string{"web"}}}); err != nil {
		t.Fatal(err)
	}
	before := h.hosts(t)
	if _, err := Dial(t.Context(), h.socket, "a", nil); err == nil || !strings.Contains(err.Error(), "already connected") {
		t.Fatalf("a second client took instance a: %v", err)
	}
	b, err := Dial(t.Context(), h.socket, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply([]hosts.Entry{{Addr: netip.MustParseAddr("127.1.1.2"), Names: []string{"web", "api"}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	waitFor(t, "b's block to go", func() bool { return h.hosts(t) == before })
}

// Connections beyond the per-user limit are refused; those within keep
// working.
func TestConnectionLimit(t *testing.T) {
	h := startHelper(t)
	var held []*raw
	for range 4 {
		r := dialRaw(t, h.socket)
		if resp := r.request(t, Request{Op: OpPing}); resp.OK {
			t.Fatal("ping before hello was accepted")
		}
		held = append(held, r)
	}
	extra := dialRaw(t, h.socket)
	if resp, ok := extra.send(t, `{"op":"info"}`); ok && resp.OK {
		t.Fatal("a fifth connection of one user was served")
	}
	held[0].c.Close()
	waitFor(t, "a slot to free", func() bool {
		c, err := Dial(t.Context(), h.socket, "late", nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// When the helper restarts, a kept session comes back by itself and puts
// its entries back.
func TestReconnectAfterRestart(t *testing.T) {
	h := startHelper(t)
	c, err := Dial(t.Context(), h.socket, "keep", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { c.Keep(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := c.Apply([]hosts.Entry{{Addr: netip.MustParseAddr("127.1.1.1"), Names: []string{"web"}}}); err != nil {
		t.Fatal(err)
	}
	h.stop()
	if got := h.hosts(t); got != userLines {
		t.Fatalf("a stopped helper left entries:\n%s", got)
	}
	s := &Server{Socket: h.socket, HostsPath: h.hostsPath, Allow: []int{os.Getuid()}}
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- s.Serve(sctx) }()
	defer func() { scancel(); <-sdone }()
	waitFor(t, "the entries to come back", func() bool { return strings.Contains(h.hosts(t), "127.1.1.1 web\n") })
}

// A helper that was killed leaves its clients' blocks; the next one removes
// those whose client is gone and leaves those whose client still runs (it
// will reconnect and take its block over).
func TestStartRemovesBlocksOfGoneClients(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	gone := hosts.File{Path: path, Block: hosts.Block{ID: "u1000-gone", Owner: "uid=1000 pid=2147483646 start=1 helper"}}
	alive := hosts.File{Path: path, Block: hosts.Block{ID: "u1000-alive", Owner: "uid=1000 " + hosts.Self().String() + " helper"}}
	if err := os.WriteFile(path, []byte(userLines), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*hosts.File{&gone, &alive} {
		if _, err := f.Apply([]hosts.Entry{{Addr: netip.MustParseAddr("127.1.1.1"), Names: []string{f.Block.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	s := &Server{Socket: filepath.Join(dir, "helper.sock"), HostsPath: path, Allow: []int{os.Getuid()}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the gone client's block to be removed", func() bool {
		b := hosts.Blocks([]byte(readFile(t, path)))
		_, hasGone := b["u1000-gone"]
		_, hasAlive := b["u1000-alive"]
		return !hasGone && hasAlive
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// closedWithin reads until the helper closes r and reports how long that
// took; what the helper said on the way out is returned too.
func (r *raw) closedWithin(t *testing.T, limit time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	_ = r.c.SetReadDeadline(start.Add(limit))
	var said strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.r.Read(buf)
		said.Write(buf[:n])
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the helper kept a silent connection open for %s", limit)
			}
			return time.Since(start), said.String()
		}
	}
}

// A connection that sends nothing is closed after HelloTimeout; a session
// that falls silent after its hello, after IdleTimeout, and its hosts block
// goes with it; one that pings stays. The defaults are TestServerDefaults'.
func TestIdleTimeouts(t *testing.T) {
	const hello, idle = 200 * time.Millisecond, 2 * time.Second
	h := startServer(t, t.TempDir(), &Server{Allow: []int{os.Getuid()}, HelloTimeout: hello, IdleTimeout: idle})

	silent := dialRaw(t, h.socket)
	if took, said := silent.closedWithin(t, 10*time.Second); took < hello-50*time.Millisecond || took >= idle || said != "" {
		t.Errorf("a silent connection was closed after %s saying %q; want after %s, without a word", took, said, hello)
	}

	// A session past its hello has the longer bound, pinging or not.
	quiet := dialRaw(t, h.socket)
	if resp := quiet.request(t, Request{Op: OpHello, Instance: "quiet"}); !resp.OK {
		t.Fatal(resp.Error)
	}
	if resp := quiet.request(t, Request{Op: OpHosts, Entries: []Entry{{Addr: "127.1.30.1", Names: []string{"quiet"}}}}); !resp.OK {
		t.Fatal(resp.Error)
	}
	talker := dialRaw(t, h.socket)
	if resp := talker.request(t, Request{Op: OpHello, Instance: "talker"}); !resp.OK {
		t.Fatal(resp.Error)
	}
	start := time.Now()
	pings := make(chan error, 1)
	go func() {
		for time.Since(start) < 2*idle {
			if _, ok := talker.send(t, `{"op":"ping"}`); !ok {
				pings <- errors.New("the helper closed a session that pinged")
				return
			}
			time.Sleep(idle / 5)
		}
		pings <- nil
	}()
	if took, _ := quiet.closedWithin(t, 10*time.Second); took < idle-100*time.Millisecond {
		t.Errorf("a quiet session was closed after %s; its bound is %s", took, idle)
	}
	waitFor(t, "the quiet session's block to go", func() bool { return !strings.Contains(h.hosts(t), "quiet") })
	if err := <-pings; err != nil {
		t.Error(err)
	}
}

// A zero Server gets the bounds the README promises: 10 s for the first
// message, 1 min between messages, 16 connections per user and 256 in all.
func TestServerDefaults(t *testing.T) {
	var s Server
	s.defaults()
	if s.HelloTimeout != 10*time.Second || s.IdleTimeout != time.Minute || s.MaxPerUser != 16 || s.MaxClients != 256 {
		t.Errorf("defaults: hello %s, idle %s, %d per user, %d in all", s.HelloTimeout, s.IdleTimeout, s.MaxPerUser, s.MaxClients)
	}
}

// All allowed users together hold at most MaxClients connections: with the
// default of 256 (and a per-user bound above it), the 257th is refused,
// and a slot freed is a slot taken.
func TestTotalConnectionLimit(t *testing.T) {
	h := startServer(t, t.TempDir(), &Server{Allow: []int{os.Getuid()}, MaxPerUser: 300})
	var held []*raw
	for i := range 256 {
		r := dialRaw(t, h.socket)
		if resp := r.request(t, Request{Op: OpInfo}); !resp.OK {
			t.Fatalf("connection %d was refused: %s", i+1, resp.Error)
		}
		held = append(held, r)
	}
	extra := dialRaw(t, h.socket)
	if resp, ok := extra.send(t, `{"op":"info"}`); ok && resp.OK {
		t.Fatal("a 257th connection was served")
	} else if !strings.Contains(resp.Error, "too many connections") {
		t.Errorf("the 257th connection was told %q", resp.Error)
	}
	held[0].c.Close()
	waitFor(t, "a slot to free", func() bool {
		r, err := net.Dial("unix", h.socket)
		if err != nil {
			return false
		}
		defer r.Close()
		raw := &raw{c: r.(*net.UnixConn), r: bufio.NewReader(r)}
		resp, ok := raw.send(t, `{"op":"info"}`)
		return ok && resp.OK
	})
}
