package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/control"
	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// controlEnv is an environment whose control sockets live under a fresh
// directory that other users can traverse: TMPDIR points there and
// XDG_RUNTIME_DIR is unset, so every user finds the same place.
func controlEnv(t *testing.T, extra ...string) (env []string, base string) {
	t.Helper()
	if _, err := os.Stat("/run/user/65534"); err == nil {
		clustertest.Skip(t, "/run/user/65534 exists: nobody's sockets would not follow TMPDIR")
	}
	base, err := os.MkdirTemp("", "kubefwd-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") && !strings.HasPrefix(kv, "TMPDIR=") && !strings.HasPrefix(kv, "SUDO_") {
			env = append(env, kv)
		}
	}
	return append(append(env, "TMPDIR="+base), extra...), base
}

// kubefwdAs runs the kubefwd CLI, as user when not empty (runuser).
func kubefwdAs(t *testing.T, env []string, user string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if user != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", user, "--", kubefwdBinary(t)}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, kubefwdBinary(t), args...)
	}
	cmd.Env = env
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitGone waits until name left the hosts file and its address stopped
// accepting connections; it returns how long that took.
func waitGone(t *testing.T, hostsPath, name string) time.Duration {
	t.Helper()
	addr := clustertest.HostsAddr(hostsPath, name)
	start := time.Now()
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		if clustertest.HostsAddr(hostsPath, name) != "" {
			return false, nil
		}
		if addr == "" {
			return true, nil
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("%s was not taken away", name)
	}
	return time.Since(start)
}

// within reports a change that took longer than the issue promises; the
// wait itself is generous so that "slow" and "never" are told apart.
func within(t *testing.T, what string, took, limit time.Duration) {
	t.Helper()
	if took > limit {
		t.Errorf("%s took %s, want within %s", what, took.Round(time.Millisecond), limit)
	}
}

// forNobody is root acting for nobody, as under `sudo` run by nobody: the
// environment (SUDO_UID/GID of nobody, a private TMPDIR), and in base, a
// /tmp-like directory anyone may create in, nobody's hosts file and
// kubeconfig (credentials inlined) — under sudo kubefwd uses the invoking
// user's files with their rights, and its socket directory goes into base.
type forNobody struct {
	env                         []string
	base, hostsPath, kubeconfig string
}

func setupForNobody(t *testing.T, c *cluster.Cluster) forNobody {
	t.Helper()
	if os.Geteuid() != 0 {
		clustertest.Skip(t, "needs root to act as nobody and daemon")
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		clustertest.Skip(t, "needs runuser")
	}
	env, base := controlEnv(t, "SUDO_UID=65534", "SUDO_GID=65534")
	if err := os.Chmod(base, 0o1777); err != nil {
		t.Fatal(err)
	}
	n := forNobody{env: env, base: base, hostsPath: filepath.Join(base, "hosts"), kubeconfig: filepath.Join(base, "kubeconfig")}
	if err := os.WriteFile(n.hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*cfg, n.kubeconfig); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{n.hostsPath, n.kubeconfig} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestControlWithoutRoot: an instance started by root under sudo (SUDO_UID
// of nobody) is steered by nobody without any privilege, and refused to a
// third user; namespaces change live; metrics parse; stop cleans up.
func TestControlWithoutRoot(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	n := setupForNobody(t, c)
	env, base, hostsPath, kubeconfig := n.env, n.base, n.hostsPath, n.kubeconfig
	in := startInstanceKubeconfig(t, kubeconfig, env, hostsPath, filepath.Join(base, "state.json"), "-n", "demo", "--instance", "ctl")
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")

	// status as nobody: every demo forward, with its state and traffic.
	var st api.Status
	err := cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		out, err := kubefwdAs(t, env, "nobody", "status", "--json")
		if err != nil {
			return false, fmt.Errorf("status as nobody: %v\n%s", err, out)
		}
		st = api.Status{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, fmt.Errorf("status --json: %v\n%s", err, out)
		}
		for _, f := range st.Forwards {
			if f.Service == "web" && len(f.Ports) == 1 && f.Ports[0].BytesIn > 0 && f.Ports[0].BytesOut > 0 {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v; last status %+v", err, st)
	}
	want := map[string]string{
		"web": api.StateActive, "api": api.StateActive, "db": api.StateActive, "cache": api.StateActive,
		"dns": api.StateActive, "legacy": api.StateActive, "external": api.StateNotForwarded,
	}
	got := map[string]string{}
	for _, f := range st.Forwards {
		if f.Pod == "" {
			got[f.Service] = f.State
		}
	}
	for svc, state := range want {
		if got[svc] != state {
			t.Errorf("%s: state %q, want %q (status %+v)", svc, got[svc], state, got)
		}
	}
	if len(st.Namespaces) != 1 || len(st.Namespaces[0].Namespaces) != 1 || st.Namespaces[0].Namespaces[0].Namespace != "demo" {
		t.Errorf("status namespaces = %+v", st.Namespaces)
	}
	if out, err := kubefwdAs(t, env, "nobody", "status"); err != nil || !strings.Contains(out, "demo/web") || !strings.Contains(out, "active") {
		t.Errorf("status table as nobody: %v\n%s", err, out)
	}

	if out, err := kubefwdAs(t, env, "nobody", "refresh"); err != nil {
		t.Errorf("refresh as nobody: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "nobody", "refresh", "web.demo"); err != nil || !strings.Contains(out, "demo/web") {
		t.Errorf("refresh web.demo as nobody: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "nobody", "refresh", "nosuch"); err == nil || !strings.Contains(out, "no forwarded service matches nosuch") {
		t.Errorf("refresh of an unknown service: %v\n%s", err, out)
	}
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")

	// namespaces add / remove, live.
	out, err := kubefwdAs(t, env, "nobody", "namespaces", "add", "demo2")
	if err != nil || !strings.Contains(out, "added ") {
		t.Fatalf("namespaces add demo2: %v\n%s", err, out)
	}
	within(t, "web.demo2 reachable after namespaces add", clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2"), 2*time.Second)
	if out, err := kubefwdAs(t, env, "nobody", "namespaces", "list"); err != nil || !strings.Contains(out, "demo2") || !strings.Contains(out, "watching") {
		t.Errorf("namespaces list: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "nobody", "namespaces", "remove", "demo2"); err != nil || !strings.Contains(out, "removed ") {
		t.Fatalf("namespaces remove demo2: %v\n%s", err, out)
	}
	within(t, "web.demo2 gone after namespaces remove", waitGone(t, hostsPath, "web.demo2"), 2*time.Second)
	if out, err := kubefwdAs(t, env, "nobody", "namespaces", "remove", "demo2"); err != nil || !strings.Contains(out, "not forwarded; nothing to remove") {
		t.Errorf("removing a namespace not forwarded: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "nobody", "namespaces", "add", "Not_A_Namespace"); err == nil || !strings.Contains(out, "not a valid name") {
		t.Errorf("adding a malformed namespace: %v\n%s", err, out)
	}
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")

	// A third user is refused: by the directory's mode, and by the
	// kernel-reported credentials when the modes are opened wide.
	sockDir := control.Dir(65534)
	if env := envLookup(env, "TMPDIR"); !strings.HasPrefix(sockDir, env) {
		sockDir = filepath.Join(env, "kubefwd-65534")
	}
	sock := filepath.Join(sockDir, "ctl.sock")
	if out, err := kubefwdAs(t, env, "daemon", "status", "--instance", sock); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("daemon reached nobody's instance: %v\n%s", err, out)
	}
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"refresh"}, {"namespaces", "add", "demo2"}} {
		out, err := kubefwdAs(t, env, "daemon", append(args, "--instance", sock)...)
		if err == nil || !strings.Contains(out, "permission denied: uid 1 may not use this kubefwd") {
			t.Errorf("daemon %v with the socket opened wide: %v\n%s", args, err, out)
		}
	}

	// Metrics parse with Prometheus' own parser.
	families := scrapeMetrics(t, sock)
	active := 0.0
	for _, m := range families["kubefwd_forwards"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" && l.GetValue() == api.StateActive {
				active = m.GetGauge().GetValue()
			}
		}
	}
	if active < 6 {
		t.Errorf("kubefwd_forwards{state=active} = %v, want ≥ 6", active)
	}
	for _, name := range []string{"kubefwd_bytes_total", "kubefwd_tunnel_dials_total", "kubefwd_api_requests_total", "kubefwd_stream_errors_total", "kubefwd_tunnel_reconnects_total", "kubefwd_api_watch_errors_total"} {
		if _, ok := families[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}

	// stop, as nobody: the process ends cleanly and takes its entries and
	// socket with it.
	if out, err := kubefwdAs(t, env, "nobody", "stop"); err != nil {
		t.Fatalf("stop as nobody: %v\n%s", err, out)
	}
	waitExit(t, in)
	if data, _ := os.ReadFile(hostsPath); string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file after stop:\n%s", data)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after stop: %v", err)
	}
	if out, err := kubefwdAs(t, env, "nobody", "status"); err == nil || !strings.Contains(out, "kubefwd svc") {
		t.Errorf("status with nothing running should say how to start one: %v\n%s", err, out)
	}
}

func envLookup(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func waitExit(t *testing.T, in *instance) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- in.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("kubefwd exited with %v\n%s", err, in.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("kubefwd did not exit\n%s", in.stderr.String())
	}
}

func scrapeMetrics(t *testing.T, sock string) map[string]*dto.MetricFamily {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://kubefwd/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return families
}

// TestNamespacesFile: the set follows a file as it is edited; a missing or
// empty file forwards nothing.
func TestNamespacesFile(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nsFile := filepath.Join(base, "namespaces")
	in := startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "--namespaces-file", nsFile)
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		out, err := kubefwdAs(t, env, "", "namespaces", "list")
		return err == nil && strings.Contains(out, "nothing forwarded"), nil
	})
	if err != nil {
		t.Fatalf("with no file, the instance should run and forward nothing\n%s", in.stderr.String())
	}

	if err := os.WriteFile(nsFile, []byte("# what Tilt deploys to\ndemo2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	within(t, "web.demo2 reachable after the file named demo2", clustertest.WaitAnswers(t, hostsPath, "web", "demo2"), 2*time.Second)

	// demo first: its Services take the short names, demo2's keep theirs.
	tmp := nsFile + ".tmp"
	if err := os.WriteFile(tmp, []byte("demo\ndemo2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, nsFile); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2")

	if err := os.WriteFile(nsFile, []byte("demo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	within(t, "web.demo2 gone after the file dropped demo2", waitGone(t, hostsPath, "web.demo2"), 2*time.Second)

	// A broken file keeps what is forwarded, and says why. Its good line
	// names another namespace: applied in part, demo2 would replace demo.
	if err := os.WriteFile(nsFile, []byte("demo2\nNot Valid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		return strings.Contains(in.stderr.String(), "line 2"), nil
	})
	if err != nil {
		t.Errorf("a broken namespaces file was not reported:\n%s", in.stderr.String())
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out, err := kubefwdAs(t, env, "", "namespaces", "list"); err != nil || strings.Contains(out, "demo2") || !strings.Contains(out, " demo ") {
			t.Fatalf("after a broken namespaces file, the forwarded set changed (%v):\n%s", err, out)
		}
	}
	clustertest.WaitAnswers(t, hostsPath, "web", "demo")
	if addr := clustertest.HostsAddr(hostsPath, "web.demo2"); addr != "" {
		t.Errorf("the broken file's good line was applied: web.demo2 is at %s", addr)
	}

	if err := os.WriteFile(nsFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitGone(t, hostsPath, "web")
	if err := in.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitExit(t, in)
}

// TestRefreshDuringTraffic: refreshing, all or one service, while requests
// keep coming: every new connection succeeds.
func TestRefreshDuringTraffic(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "busy", "web", 2, 80); err != nil {
		t.Fatal(err)
	}
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-n", "busy")
	clustertest.WaitAnswers(t, hostsPath, "web", "busy")
	addr := clustertest.HostsAddr(hostsPath, "web")

	ctx, stop := context.WithCancel(t.Context())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				body, err := clustertest.Get(addr, 80)
				if err == nil && strings.HasPrefix(body, "pod=busy/web-") {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%q, %v", body, err))
			}
		})
	}
	for i := range 6 {
		args := []string{"refresh"}
		if i%2 == 1 {
			args = append(args, "web")
		}
		if out, err := kubefwdAs(t, env, "", args...); err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if failed.Load() > 0 || ok.Load() < 10 {
		t.Errorf("during refreshes: %d requests succeeded, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
}

// tunnelStats is the instance's tunnel counters (one context).
func tunnelStats(t *testing.T, env []string) (open, retiring int, dials int64) {
	t.Helper()
	out, err := kubefwdAs(t, env, "", "status", "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, tu := range st.Tunnels {
		open += tu.Open
		retiring += tu.Retiring
		dials += tu.Dials
	}
	return open, retiring, dials
}

// httpGet sends one keep-alive request on conn and reads the answer.
func httpGet(conn net.Conn, br *bufio.Reader) (string, error) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// TestRefreshReopensTunnels: a refresh dials new tunnels for new
// connections, leaves a connection in flight working on the old tunnel, and
// closes the old tunnel once its grace (5 s) is over.
func TestRefreshReopensTunnels(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "refr", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-n", "refr")
	clustertest.WaitAnswers(t, hostsPath, "web", "refr")
	addr := clustertest.HostsAddr(hostsPath, "web")

	// A connection in flight, on the one tunnel to the one pod.
	conn, err := net.Dial("tcp", net.JoinHostPort(addr, "80"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if body, err := httpGet(conn, br); err != nil || !strings.HasPrefix(body, "pod=refr/web-") {
		t.Fatalf("before refresh: %q, %v", body, err)
	}
	open0, _, dials0 := tunnelStats(t, env)
	if open0 != 1 {
		t.Fatalf("before refresh: %d tunnels open, want 1\n%s", open0, in.stderr.String())
	}

	if out, err := kubefwdAs(t, env, "", "refresh"); err != nil {
		t.Fatalf("refresh: %v\n%s", err, out)
	}
	refreshed := time.Now()
	// A new connection dials a new tunnel.
	if body, err := clustertest.Get(addr, 80); err != nil || !strings.HasPrefix(body, "pod=refr/web-") {
		t.Fatalf("new connection after refresh: %q, %v", body, err)
	}
	open1, retiring1, dials1 := tunnelStats(t, env)
	if dials1 != dials0+1 || open1 != 1 || retiring1 != 1 {
		t.Errorf("after refresh and a new connection: %d dials (before %d), %d tunnels open, %d retiring; want one more dial, the new tunnel in use and the old one kept for the connection in flight", dials1, dials0, open1, retiring1)
	}
	// The connection in flight still works.
	if body, err := httpGet(conn, br); err != nil || !strings.HasPrefix(body, "pod=refr/web-") {
		t.Errorf("the connection in flight broke at refresh: %q, %v", body, err)
	}

	// Once the grace is over, the old tunnel closes under it.
	err = cluster.Poll(t.Context(), 15*time.Second, func(context.Context) (bool, error) {
		_, retiring, _ := tunnelStats(t, env)
		return retiring == 0, nil
	})
	if err != nil {
		t.Fatalf("the old tunnel is still open %s after refresh", time.Since(refreshed).Round(time.Second))
	}
	if took := time.Since(refreshed); took < forward.RetireGrace-time.Second {
		t.Errorf("the old tunnel, carrying a connection, closed %s after refresh: before its grace", took.Round(time.Millisecond))
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection on the old tunnel is still open after its grace (read: %v)", err)
	}
}

// TestEventsShowPodDeletion: a follower of kubefwd events sees the pod it
// deleted leave the Service's endpoints.
func TestEventsShowPodDeletion(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "evts", "web", 2, 80); err != nil {
		t.Fatal(err)
	}
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-n", "evts")
	clustertest.WaitAnswers(t, hostsPath, "web", "evts")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, kubefwdBinary(t), "events", "--json")
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	events := make(chan api.Event, 256)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev api.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
	}()
	next := func(what string, match func(api.Event) bool) api.Event {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the event stream ended before %s", what)
				}
				if match(ev) {
					return ev
				}
			case <-timeout:
				t.Fatalf("no event: %s", what)
			}
		}
	}
	next("subscribed", func(ev api.Event) bool { return ev.Type == api.EventSubscribed })

	pods, err := c.Pods(t.Context(), "evts", "web")
	if err != nil || len(pods) != 2 {
		t.Fatalf("pods: %v, %v", len(pods), err)
	}
	victim := pods[0].Name
	if err := c.DeletePod(t.Context(), "evts", victim); err != nil {
		t.Fatal(err)
	}
	// The replacement may become ready in the same change that takes the
	// victim away (under load the EndpointSlice carries both at once), so
	// both events are awaited in whatever order they come.
	var removed, added bool
	next("endpoint-removed for "+victim+" and the replacement pod added", func(ev api.Event) bool {
		switch {
		case ev.Type == api.EventEndpointRemoved && ev.Pod == victim:
			if ev.Namespace != "evts" || ev.Service != "web" {
				t.Errorf("event = %+v", ev)
			}
			removed = true
		case ev.Type == api.EventEndpointAdded && ev.Service == "web" && ev.Pod != victim && ev.Pod != pods[1].Name:
			added = true
		}
		return removed && added
	})
}

// TestNamespacesChangeUnderAllNamespaces: an instance forwarding every
// namespace (-A) answers a namespaces change with 409 Conflict and says why.
func TestNamespacesChangeUnderAllNamespaces(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-A", "--instance", "everything")
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", in.stderr)

	out, err := kubefwdAs(t, env, "", "namespaces", "add", "demo", "--instance", "everything")
	if err == nil || !strings.Contains(out, "forwards all namespaces (-A)") {
		t.Errorf("namespaces add under -A: %v\n%s", err, out)
	}
	// The same as the API answers it.
	sock := filepath.Join(rootSocketDir(base), "everything.sock")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Post("http://kubefwd/v1/namespaces", "application/json", strings.NewReader(`{"op": "add", "namespaces": ["demo"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "forwards all namespaces (-A)") {
		t.Errorf("POST /v1/namespaces under -A: %s %s", resp.Status, body)
	}
}

// TestEventsDropSlowReader: a reader that stops reading is dropped, never
// waited for, and the last line it gets says so.
func TestEventsDropSlowReader(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-n", "demo2", "--instance", "slow")
	clustertest.WaitAnswers(t, hostsPath, "web", "demo2", in.stderr)
	dir := rootSocketDir(base)
	sock := filepath.Join(dir, "slow.sock")

	// Subscribe, then read nothing.
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://kubefwd/v1/events", nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	// Many events (a refresh is one), more than the socket and the
	// subscription's buffer hold; forwarding goes on meanwhile.
	client, err := control.Connect(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	for range 3000 {
		if _, err := client.Refresh(t.Context()); err != nil {
			t.Fatalf("refresh while a reader stalls: %v", err)
		}
	}
	if body, err := clustertest.Get(clustertest.HostsAddr(hostsPath, "web"), 80); err != nil || !strings.HasPrefix(body, "pod=demo2/") {
		t.Errorf("forwarding while an events reader stalls: %q, %v", body, err)
	}

	// Now read it all: the stream ends with the dropped line.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var last api.Event
	n := 0
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("event line %d: %v: %s", n+1, err, sc.Bytes())
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the events after %d lines: %v", n, err)
	}
	if last.Type != "dropped" || n >= 3000 {
		t.Errorf("a stalled reader got %d events, the last %+v; want fewer than were sent, ending with a dropped line", n, last)
	}
}

// rootSocketDir is where an instance run as root in controlEnv's
// environment (no XDG_RUNTIME_DIR, TMPDIR=base) puts its control socket.
func rootSocketDir(base string) string {
	if info, err := os.Stat("/run/user/0"); err == nil && info.IsDir() {
		return "/run/user/0/kubefwd"
	}
	return filepath.Join(base, "kubefwd-0")
}

// TestEnvAndStatusOutputs: `kubefwd env` prints variables that reach the
// Services they name, in every format; pause and resume take a Service out
// and back; `status -o wide|yaml` carry what the table does not; bad input
// is refused with exit code 2.
func TestEnvAndStatusOutputs(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	env, base := controlEnv(t)
	hostsPath := filepath.Join(base, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstanceEnv(t, c, env, hostsPath, filepath.Join(base, "state.json"), "-n", "demo", "-n", "demo2", "--instance", "envs")
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", in.stderr)
	clustertest.WaitAnswers(t, hostsPath, "web", "demo", in.stderr)

	out, err := kubefwdAs(t, env, "", "env", "--instance", "envs", "--format", "dotenv")
	if err != nil {
		t.Fatalf("env: %v\n%s", err, out)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	for name, ns := range map[string]string{"WEB": "demo", "WEB_DEMO2": "demo2", "API": "demo"} {
		if vars[name+"_HOST"] == "" || clustertest.HostsAddr(hostsPath, vars[name+"_HOST"]) != vars[name+"_ADDR"] {
			t.Errorf("%s_HOST=%q is not %s_ADDR=%q in the hosts file:\n%s", name, vars[name+"_HOST"], name, vars[name+"_ADDR"], out)
			continue
		}
		port, _ := strconv.Atoi(vars[name+"_PORT"])
		if body, err := clustertest.Get(vars[name+"_ADDR"], port); err != nil || !strings.HasPrefix(body, "pod="+ns+"/") {
			t.Errorf("%s_ADDR:%s_PORT answered %q, %v; want a %s pod", name, name, body, err, ns)
		}
	}
	if vars["WEB_PORT_HTTP"] != vars["WEB_PORT"] {
		t.Errorf("WEB_PORT_HTTP=%q, WEB_PORT=%q", vars["WEB_PORT_HTTP"], vars["WEB_PORT"])
	}

	// Only the named ones; the shell format evaluates in a real shell.
	out, err = kubefwdAs(t, env, "", "env", "--instance", "envs", "web.demo2")
	if err != nil || strings.Contains(out, "API_") {
		t.Fatalf("env web.demo2: %v\n%s", err, out)
	}
	sh := exec.Command("sh", "-c", out+`printf '%s %s' "$WEB_DEMO2_HOST" "$WEB_DEMO2_PORT"`)
	if got, err := sh.Output(); err != nil || string(got) != "web.demo2 80" {
		t.Errorf("the shell format, evaluated: %q, %v\n%s", got, err, out)
	}
	out, err = kubefwdAs(t, env, "", "env", "--instance", "envs", "--format", "json", "api")
	var js map[string]string
	if err != nil || json.Unmarshal([]byte(out), &js) != nil || js["API_PORT"] != "8080" || len(js) != 4 {
		t.Errorf("env --format json api: %v\n%s", err, out)
	}

	for _, bad := range [][]string{{"env", "nope"}, {"env", "--format", "yaml"}, {"status", "-o", "xml"}} {
		out, err := kubefwdAs(t, env, "", append(bad, "--instance", "envs")...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %v, want 2 and one line:\n%s", bad, err, out)
		}
	}

	// The pod's log, read by the instance: web has answered, so its pod
	// logged the requests.
	if out, err := kubefwdAs(t, env, "", "logs", "web", "--tail", "1", "--instance", "envs"); err != nil || !strings.Contains(out, "GET / from") || strings.Count(out, "\n") != 1 {
		t.Errorf("logs web --tail 1: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "", "logs", "nope", "--instance", "envs"); err == nil || !strings.Contains(out, "no forwarded service matches nope") {
		t.Errorf("logs nope: %v\n%s", err, out)
	}

	// Paused, a Service leaves env and shows paused in status; resumed, it
	// is back where it was.
	if out, err := kubefwdAs(t, env, "", "pause", "web.demo2", "--instance", "envs"); err != nil || !strings.Contains(out, "paused: demo2/web") {
		t.Fatalf("pause web.demo2: %v\n%s", err, out)
	}
	waitGone(t, hostsPath, "web.demo2")
	if out, err := kubefwdAs(t, env, "", "env", "--instance", "envs"); err != nil || strings.Contains(out, "WEB_DEMO2") || !strings.Contains(out, "WEB_HOST") {
		t.Errorf("env while web.demo2 is paused: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "", "status", "--instance", "envs"); err != nil || !strings.Contains(out, "paused: by you") {
		t.Errorf("status while web.demo2 is paused: %v\n%s", err, out)
	}
	if out, err := kubefwdAs(t, env, "", "resume", "web.demo2", "--instance", "envs"); err != nil || !strings.Contains(out, "resumed: demo2/web") {
		t.Fatalf("resume web.demo2: %v\n%s", err, out)
	}
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", in.stderr)
	if got := clustertest.HostsAddr(hostsPath, "web.demo2"); got != vars["WEB_DEMO2_ADDR"] {
		t.Errorf("web.demo2 came back at %s, not %s", got, vars["WEB_DEMO2_ADDR"])
	}
	// The pause is in the instance's history, before the live stream.
	ectx, ecancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer ecancel()
	events := exec.CommandContext(ectx, kubefwdBinary(t), "events", "--recent", "100", "--json", "--instance", "envs")
	events.Env, events.Dir = env, "/"
	history, _ := events.Output() // ends when the timeout kills it
	pausedAt, subscribedAt := -1, -1
	for i, line := range strings.Split(strings.TrimSpace(string(history)), "\n") {
		var ev api.Event
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		switch {
		case ev.Type == api.EventForward && ev.Namespace == "demo2" && ev.State == api.StatePaused && pausedAt < 0:
			pausedAt = i
		case ev.Type == api.EventSubscribed:
			subscribedAt = i
		}
	}
	if pausedAt < 0 || subscribedAt < pausedAt {
		t.Errorf("events --recent: the pause at line %d, subscribed at %d:\n%s", pausedAt, subscribedAt, history)
	}
	if out, err := kubefwdAs(t, env, "", "events", "--recent", "-1", "--instance", "envs"); err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("events --recent -1: %v\n%s", err, out)
	}

	for _, bad := range [][]string{{"pause"}, {"resume", "web"}} {
		out, err := kubefwdAs(t, env, "", append(bad, "--instance", "envs")...)
		if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: %v, want an error in one line:\n%s", bad, err, out)
		}
	}

	out, err = kubefwdAs(t, env, "", "status", "-o", "wide", "--instance", "envs")
	if err != nil || !strings.Contains(out, "RETRIED") || !strings.Contains(out, "web,web.demo") || !strings.Contains(out, "web-") {
		t.Errorf("status -o wide: %v\n%s", err, out)
	}
	out, err = kubefwdAs(t, env, "", "status", "-o", "yaml", "--instance", "envs")
	var st api.Status
	if err != nil || yaml.Unmarshal([]byte(out), &st) != nil || !slices.ContainsFunc(st.Forwards, func(f api.Forward) bool {
		return f.Service == "web" && f.Namespace == "demo2" && f.State == api.StateActive && slices.Contains(f.Names, "web.demo2")
	}) {
		t.Errorf("status -o yaml: %v\n%s", err, out)
	}
}
