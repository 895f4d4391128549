package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/namespaces"
	"github.com/kubefwd/kubefwd/test/hostiletest"
	"github.com/kubefwd/kubefwd/test/needs"
)

const helperEnv = "KUBEFWD_CONTROL_HELPER"

// The test binary doubles as a client run as another user.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		c, err := Connect(os.Args[len(os.Args)-2], os.Args[len(os.Args)-1])
		if err == nil {
			_, err = c.Status(context.Background())
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// stubEngine stands in for the engine: the API is what is tested here.
type stubEngine struct {
	refreshed atomic.Int32
	bytesIn   atomic.Int64 // web's, beyond 1000
	relay     atomic.Bool  // also a relayed UDP port, and the relay
}

func (s *stubEngine) Status() api.Status {
	st := api.Status{
		Contexts: []string{"dev"},
		Forwards: []api.Forward{
			{Context: "dev", Namespace: "demo", Service: "web", State: api.StateActive,
				Ports: []api.Port{{Port: 80, Local: 80, Connections: 2, BytesIn: 1000 + s.bytesIn.Load(), BytesOut: 200}}},
			{Context: "dev", Namespace: "demo", Service: "external", State: api.StateNotForwarded},
		},
		Tunnels: []api.TunnelStats{{Context: "dev", Open: 1, Dials: 3, DialFailures: 1, Direct: 4}},
	}
	if s.relay.Load() {
		// TCP and UDP on one port number (the UDP one through the relay).
		st.Forwards = append(st.Forwards, api.Forward{Context: "dev", Namespace: "demo", Service: "dns", State: api.StateActive,
			Ports: []api.Port{{Protocol: "TCP", Port: 53, Local: 53, BytesIn: 5}, {Protocol: "UDP", Port: 53, Local: 53, BytesIn: 7, Relay: "via relay"}}})
		st.Relays = []api.Relay{{Context: "dev", Namespace: "demo", Pod: "kubefwd-relay-x", Ready: true}}
	}
	return st
}
func (s *stubEngine) Refresh() { s.refreshed.Add(1) }
func (s *stubEngine) RefreshServices(services []string) ([]string, error) {
	if slices.Contains(services, "nope") {
		return nil, errors.New("no forwarded service matches nope")
	}
	return services, nil
}
func (s *stubEngine) Pause(services []string) ([]string, error)  { return s.RefreshServices(services) }
func (s *stubEngine) Resume(services []string) ([]string, error) { return s.RefreshServices(services) }
func (s *stubEngine) Namespaces() []api.ContextNamespaces        { return nil }
func (s *stubEngine) ClusterNamespaces(context.Context) []api.ClusterNamespaces {
	return []api.ClusterNamespaces{{Context: "dev", Namespaces: []string{"default", "demo"}}}
}
func (s *stubEngine) Logs(_ context.Context, req api.LogsRequest, begin func(api.LogSource) io.Writer) error {
	switch req.Service {
	case "nope":
		return &api.NotFoundError{Message: "no forwarded service matches nope"}
	case "broken":
		return errors.New("pods \"web-1\" is forbidden")
	}
	w := begin(api.LogSource{Pod: "web-1", Container: "app", Containers: []string{"app", "sidecar"}})
	_, err := fmt.Fprintf(w, "service=%s pod=%s container=%s tail=%d follow=%v\n", req.Service, req.Pod, req.Container, req.Tail, req.Follow)
	return err
}
func (s *stubEngine) ChangeNamespaces(op string, refs []namespaces.Ref) (api.NamespaceChange, error) {
	return api.NamespaceChange{Added: refs}, nil
}
func (s *stubEngine) Subscribe() api.Subscription { return nil }

func serve(t *testing.T, dir string, uid int) (*stubEngine, func()) {
	t.Helper()
	eng := &stubEngine{}
	s := &Server{Engine: eng, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), UID: uid}
	if uid != os.Getuid() {
		s.User = &asuser.User{UID: uid, GID: uid} // root acting for the invoking user
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, dir, "inst") }()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(Instances(dir), "inst") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return eng, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

func TestStatusAndRefresh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubefwd")
	eng, stop := serve(t, dir, os.Getuid())
	c, err := Connect(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(t.Context())
	if err != nil || len(st.Forwards) != 2 || st.Forwards[0].Service != "web" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if got, err := c.Refresh(t.Context()); err != nil || eng.refreshed.Load() != 1 || !slices.Equal(got, []string{"all"}) {
		t.Fatalf("refresh: %v, %v (refreshed %d)", got, err, eng.refreshed.Load())
	}
	if got, err := c.Refresh(t.Context(), "web"); err != nil || !slices.Equal(got, []string{"web"}) {
		t.Fatalf("refresh web: %v, %v", got, err)
	}
	if _, err := c.Refresh(t.Context(), "nope"); err == nil || !strings.Contains(err.Error(), "no forwarded service matches nope") {
		t.Fatalf("refresh of an unknown service: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, "inst.sock"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v", info.Mode(), err)
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, "inst.sock")); !os.IsNotExist(err) {
		t.Error("the socket was not removed at exit")
	}
	if _, err := Connect(dir, ""); err != ErrNoInstance {
		t.Errorf("Connect with nothing running = %v", err)
	}
}

// The status stream starts whole, then carries only the forwards that
// changed; its follower sees every change.
func TestStatusStream(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubefwd")
	eng, stop := serve(t, dir, os.Getuid())
	defer stop()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "inst.sock"))
	}}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://kubefwd/v1/status?watch=100ms", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var first, quiet, moved api.StatusUpdate
	if err := dec.Decode(&first); err != nil || !first.Reset || len(first.Forwards) != 2 {
		t.Fatalf("first line: %+v, %v", first, err)
	}
	if err := dec.Decode(&quiet); err != nil || quiet.Reset || len(quiet.Forwards) != 0 || len(quiet.Tunnels) != 1 {
		t.Fatalf("a line with nothing changed: %+v, %v", quiet, err)
	}
	eng.bytesIn.Add(5)
	for moved.Forwards == nil {
		if err := dec.Decode(&moved); err != nil {
			t.Fatal(err)
		}
	}
	if len(moved.Forwards) != 1 || moved.Forwards[0].Service != "web" || moved.Forwards[0].Ports[0].BytesIn != 1005 {
		t.Fatalf("after web moved: %+v", moved.Forwards)
	}

	// The client's follower applies the updates.
	c, err := Connect(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []int64
	err = c.WatchStatus(ctx, 100*time.Millisecond, func(st api.Status) bool {
		if len(st.Forwards) != 2 {
			t.Errorf("follower lost a forward: %+v", st.Forwards)
			return false
		}
		seen = append(seen, st.Forwards[0].Ports[0].BytesIn)
		if len(seen) == 2 {
			eng.bytesIn.Add(10)
		}
		return st.Forwards[0].Ports[0].BytesIn != 1015
	})
	if err != nil || seen[0] != 1005 || seen[len(seen)-1] != 1015 {
		t.Fatalf("follower saw %v, %v", seen, err)
	}
}

// The allowed user gets in; anyone else is refused by the kernel-credential
// check even when file permissions would let them reach the socket.
func TestPeerCredentials(t *testing.T) {
	needs.Root(t, "to run clients as other users")
	base, err := os.MkdirTemp("", "kubefwd-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "kubefwd")
	// The invoking user makes the socket's directory here.
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	_, stop := serve(t, dir, 65534) // nobody is the invoking user
	defer stop()
	self, _ := os.Executable()
	bin := filepath.Join(base, "client")
	data, _ := os.ReadFile(self)
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// Open the way wide so only the credential check stands in it.
	for _, p := range []string{base, dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "inst.sock"), 0o666); err != nil {
		t.Fatal(err)
	}
	daemon, err := user.Lookup("daemon")
	if err != nil {
		t.Fatal(err)
	}

	run := func(user string) (string, error) {
		cmd := exec.Command("runuser", "-u", user, "--", bin, "-test.run=^$", dir, "inst")
		cmd.Env = append(os.Environ(), helperEnv+"=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("nobody"); err != nil {
		t.Errorf("the invoking user was refused: %v: %s", err, out)
	}
	// Refused by the credential check (the server's 403), not by a file
	// mode on the way.
	out, err := run("daemon")
	if want := "permission denied: uid " + daemon.Uid + " may not use this kubefwd"; err == nil || !strings.Contains(out, want) {
		t.Errorf("a third user got in, or was not refused by its credentials (want %q): %v: %s", want, err, out)
	}
}

// A socket left by a crashed instance is removed when another starts.
func TestStaleSocketRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubefwd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "dead.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody answers
	_, stop := serve(t, dir, os.Getuid())
	defer stop()
	if ids := Instances(dir); len(ids) != 1 || ids[0] != "inst" {
		t.Errorf("instances = %v, want only the live one", ids)
	}
}

// Metrics are Prometheus text that the Prometheus parser reads.
func TestMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubefwd")
	eng, stop := serve(t, dir, os.Getuid())
	defer stop()
	eng.relay.Store(true)
	c, err := Connect(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://kubefwd/v1/metrics", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range families[name].GetMetric() {
			match := true
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					match = false
				}
			}
			if match {
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s%v in %v", name, labels, families[name])
		return 0
	}
	if v := value("kubefwd_forwards", map[string]string{"state": api.StateActive}); v != 2 {
		t.Errorf("active forwards = %v", v)
	}
	if v := value("kubefwd_bytes_total", map[string]string{"service": "web", "direction": "in"}); v != 1000 {
		t.Errorf("bytes in = %v", v)
	}
	if v := value("kubefwd_connections_open", map[string]string{"service": "web"}); v != 2 {
		t.Errorf("open connections = %v", v)
	}
	if v := value("kubefwd_tunnel_dial_failures_total", map[string]string{"context": "dev"}); v != 1 {
		t.Errorf("dial failures = %v", v)
	}
	if v := value("kubefwd_direct_connections_total", map[string]string{"context": "dev"}); v != 4 {
		t.Errorf("direct connections = %v", v)
	}
	if v := value("kubefwd_bytes_total", map[string]string{"service": "dns", "port": "53/udp", "direction": "in"}); v != 7 {
		t.Errorf("UDP bytes in = %v", v)
	}
	if v := value("kubefwd_bytes_total", map[string]string{"service": "dns", "port": "53", "direction": "in"}); v != 5 {
		t.Errorf("TCP bytes in = %v", v)
	}
	if v := value("kubefwd_relay_ready", map[string]string{"context": "dev"}); v != 1 {
		t.Errorf("relay ready = %v", v)
	}
	// The runtime's and the process's figures, which a long run is watched by.
	if v := value("go_goroutines", nil); v < 1 {
		t.Errorf("goroutines = %v", v)
	}
	if v := value("process_open_fds", nil); v < 3 {
		t.Errorf("open fds = %v", v)
	}
}

// TestBadRequests: malformed input gets a 400 with a message, never a
// change or a hang.
func TestBadRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubefwd")
	_, stop := serve(t, dir, os.Getuid())
	defer stop()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "inst.sock"))
	}}}
	tests := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/v1/namespaces", "", 400, "needs a JSON body"},
		{"POST", "/v1/namespaces", "{not json", 400, "malformed request body"},
		{"POST", "/v1/namespaces", `{"op":"add","namespaces":["demo"],"extra":1}`, 400, "unknown field"},
		{"POST", "/v1/namespaces", `{"op":"rename","namespaces":["demo"]}`, 400, "want set, add or remove"},
		{"POST", "/v1/namespaces", `{"op":"add","namespaces":[]}`, 400, "name at least one namespace"},
		{"POST", "/v1/namespaces", `{"op":"add","namespaces":["Bad Name"]}`, 400, "not a valid name"},
		{"POST", "/v1/namespaces", `{"op":"add","namespaces":["a"]}{}`, 400, "more than one JSON value"},
		{"POST", "/v1/refresh", `{"services":"web"}`, 400, "malformed request body"},
		{"GET", "/v1/logs", "", 400, "name the service"},
		{"GET", "/v1/logs?service=web&tail=x", "", 400, "want a number of lines"},
		{"GET", "/v1/logs?service=web&tail=-1", "", 400, "want a number of lines"},
		{"GET", "/v1/logs?service=web&follow=maybe", "", 400, "want true or false"},
		{"GET", "/v1/logs?service=nope", "", 404, "no forwarded service matches nope"},
		{"GET", "/v1/logs?service=broken", "", 502, "forbidden"},
		{"GET", "/v1/logs?service=web&pod=web-1&container=app&tail=5&follow=true", "", 200, "service=web pod=web-1 container=app tail=5 follow=true"},
		{"POST", "/v1/pause", `{"services":[]}`, 400, "pause: name at least one service"},
		{"POST", "/v1/resume", "", 400, "needs a JSON body"},
		{"POST", "/v1/pause", `{"services":["nope"]}`, 404, "no forwarded service matches nope"},
		{"POST", "/v1/resume", `{"services":["web"]}`, 200, `{"services":["web"]}`},
		{"POST", "/v1/stop", "", 501, "cannot be stopped"},
		{"GET", "/v2/status", "", 404, "no such endpoint"},
		{"GET", "/v1/status?watch=often", "", 400, "want an interval from 100ms to 1m0s"},
		{"GET", "/v1/status?watch=10ms", "", 400, "want an interval from 100ms to 1m0s"},
		{"POST", "/v1/namespaces", `{"op":"add","namespaces":["` + strings.Repeat("a", 2<<20) + `"]}`, 400, "cannot read the request body"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://kubefwd"+tt.path, strings.NewReader(tt.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.msg) {
			t.Errorf("%s %s %.40q: %d %s, want %d with %q", tt.method, tt.path, tt.body, resp.StatusCode, body, tt.code, tt.msg)
		}
	}
}

// hostileBase is a directory the invoking user (nobody) may write in, like
// /run/user/UID or /tmp.
func hostileBase(t *testing.T) string {
	t.Helper()
	hostiletest.NeedRoot(t)
	return hostiletest.Dir(t, 0o777)
}

func serveErr(dir string, uid int) error {
	s := &Server{Engine: &stubEngine{}, Log: slog.New(slog.DiscardHandler), UID: uid, User: &asuser.User{UID: uid, GID: uid}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.Serve(ctx, dir, "inst")
}

// The user makes their socket directory a symlink to a directory of root's
// (the issue's /etc case): root neither gives it away nor deletes
// anything in it, and says why it stops.
func TestHostileControlDirSymlink(t *testing.T) {
	base := hostileBase(t)
	victim := hostiletest.Dir(t, 0o755) // root's, and reachable by all, like /etc
	if err := os.WriteFile(filepath.Join(victim, "passwd.sock"), []byte("root's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(victim, "dead.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	dir := filepath.Join(base, "kubefwd")
	if err := os.Symlink(victim, dir); err != nil {
		t.Fatal(err)
	}
	err = serveErr(dir, 65534)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Serve through a symlink: %v, want a refusal naming the link", err)
	}
	info, _ := os.Stat(victim)
	if st := info.Sys().(*syscall.Stat_t); st.Uid != 0 || info.Mode().Perm() != 0o755 {
		t.Errorf("root's directory was changed: owner %d mode %v", st.Uid, info.Mode().Perm())
	}
	for _, name := range []string{"passwd.sock", "dead.sock"} {
		if _, err := os.Lstat(filepath.Join(victim, name)); err != nil {
			t.Errorf("%s in root's directory: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(victim)
	if len(entries) != 2 {
		t.Errorf("root's directory holds %d entries, want the 2 it had", len(entries))
	}
}

// Another user created the fallback directory first (a shared /tmp): it
// is refused, not used.
func TestHostileControlDirOfAnotherUser(t *testing.T) {
	base := hostileBase(t)
	dir := filepath.Join(base, "kubefwd-65534")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if err := os.Chown(dir, 1, 1); err != nil { // daemon
		t.Fatal(err)
	}
	err := serveErr(dir, 65534)
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 1") {
		t.Errorf("Serve in another user's directory: %v, want a refusal naming its owner", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("something was created in another user's directory: %v", entries)
	}
}

// Stale-socket clean-up removes only dead sockets of the user: not a
// regular file named *.sock, not another user's socket.
func TestHostileStaleCleanupOnlyOwnSockets(t *testing.T) {
	base := hostileBase(t)
	dir := filepath.Join(base, "kubefwd")
	err := (&asuser.User{UID: 65534, GID: 65534}).Do(func() error {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "notes.sock"), []byte("x"), 0o600); err != nil {
			return err
		}
		for _, name := range []string{"dead.sock", "other.sock"} {
			ln, err := net.Listen("unix", filepath.Join(dir, name))
			if err != nil {
				return err
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			ln.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dir, "other.sock"), 1, 1); err != nil {
		t.Fatal(err)
	}
	_, stop := serve(t, dir, 65534)
	for name, want := range map[string]bool{"notes.sock": true, "other.sock": true, "dead.sock": false, "inst.sock": true} {
		_, err := os.Lstat(filepath.Join(dir, name))
		if (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, want)
		}
	}
	info, err := os.Lstat(filepath.Join(dir, "inst.sock"))
	if err == nil && info.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("the socket is owned by uid %d, want the invoking user's", info.Sys().(*syscall.Stat_t).Uid)
	}
	stop()
	if _, err := os.Lstat(filepath.Join(dir, "inst.sock")); err == nil {
		t.Error("the socket stayed after the instance stopped")
	}
}

// A log answer says which pod and container it reads, and what else the
// pod has.
func TestLogStreamSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubefwd")
	_, stop := serve(t, dir, os.Getuid())
	defer stop()
	c, err := Connect(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if cns, err := c.ClusterNamespaces(t.Context()); err != nil || len(cns) != 1 || !slices.Equal(cns[0].Namespaces, []string{"default", "demo"}) {
		t.Errorf("cluster namespaces: %+v, %v", cns, err)
	}
	src, body, err := c.LogStream(t.Context(), api.LogsRequest{Service: "web", Tail: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if src.Pod != "web-1" || src.Container != "app" || !slices.Equal(src.Containers, []string{"app", "sidecar"}) || !strings.Contains(string(b), "tail=3") {
		t.Errorf("source %+v, body %q", src, b)
	}
}
