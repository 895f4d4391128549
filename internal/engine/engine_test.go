package engine_test

import (
	"bufio"
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
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/engine"
	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/kube"
	"github.com/kubefwd/kubefwd/internal/loopback"
	"github.com/kubefwd/kubefwd/internal/netwatch"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// fwd is a running engine and the hosts file it writes.
type fwd struct {
	hostsPath string
	engine    *engine.Engine
	stop      func()
}

type fwdOptions struct {
	namespaces []string
	all        bool
	contexts   []string // default: the cluster's own
	kubeconfig string   // default: the cluster's
	statePath  string
	wait       time.Duration
	domain     string
	mapping    catalog.Mapping
	logs       io.Writer // also gets the engine's log
	// hostsDir makes the hosts path a directory, so that every write of
	// it fails until the test puts a file there.
	hostsDir bool
	netns    string // the network namespace whose changes count (default: ours)
	// tunnelsOnly keeps every connection on a tunnel (no direct first
	// connections), for tests about tunnels.
	tunnelsOnly bool
	relay       engine.RelayOptions
	udpIdle     time.Duration // UDP flows end after this long idle (default 2 min)
}

// startEngine runs the engine the way `kubefwd svc` does, until the test
// ends or stop is called.
func startEngine(t *testing.T, c *cluster.Cluster, o fwdOptions) *fwd {
	t.Helper()
	dir := t.TempDir()
	f := &fwd{hostsPath: filepath.Join(dir, "hosts")}
	if o.hostsDir {
		if err := os.Mkdir(f.hostsPath, 0o755); err != nil {
			t.Fatal(err)
		}
	} else if err := os.WriteFile(f.hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := o.kubeconfig
	if kubeconfig == "" {
		kubeconfig = c.Kubeconfig
	}
	contexts := o.contexts
	if contexts == nil {
		contexts = []string{c.Context}
	}
	flags := &kube.Flags{}
	if kubeconfig != " " { // " ": use $KUBECONFIG
		flags.Kubeconfig = kubeconfig
	}
	targets, err := kube.Resolve(kube.Request{Flags: flags, Contexts: contexts, Namespaces: o.namespaces, AllNamespaces: o.all, QPS: 50, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if err := kube.Preflight(t.Context(), tg); err != nil {
			t.Fatal(err)
		}
	}
	state := o.statePath
	if state == "" {
		state = filepath.Join(dir, "state.json")
	}
	wait := o.wait
	if wait == 0 {
		wait = 20 * time.Second
	}
	var logTo io.Writer = testWriter{t}
	if o.logs != nil {
		logTo = io.MultiWriter(logTo, o.logs)
	}
	eng, err := engine.New(engine.Options{
		Targets: targets,
		Domain:  o.domain,
		Mapping: o.mapping,
		State:   loopback.Store{Path: state},
		Hosts:   &hosts.File{Path: f.hostsPath, Block: hosts.Block{ID: "test", Owner: "pid=0"}},
		Proxy:   forward.ProxyOptions{WaitForEndpoint: wait},
		Dialer:  forward.DialerOptions{DisableDirect: o.tunnelsOnly},
		Network: netwatch.Options{NetNS: o.netns},
		Relay:   o.relay,
		UDP:     forward.UDPOptions{FlowIdle: o.udpIdle},
		Log:     slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = eng
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("engine: %v", err)
				}
			case <-time.After(10 * time.Second):
				// Say where it is stuck: every goroutine's stack.
				var stacks strings.Builder
				pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				t.Errorf("engine did not stop within 10s; goroutines:\n%s", stacks.String())
			}
		})
	}
	t.Cleanup(f.stop)
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// addr looks name up in the engine's hosts file.
func (f *fwd) addr(name string) (string, bool) {
	data, err := os.ReadFile(f.hostsPath)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		for _, n := range fields[min(1, len(fields)):] {
			if n == name {
				return fields[0], true
			}
		}
	}
	return "", false
}

// waitName waits until name is in the hosts file and returns its address.
func (f *fwd) waitName(t *testing.T, name string) string {
	t.Helper()
	var a string
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		var ok bool
		a, ok = f.addr(name)
		return ok, nil
	})
	if err != nil {
		data, _ := os.ReadFile(f.hostsPath)
		t.Fatalf("%s never appeared in the hosts file:\n%s", name, data)
	}
	return a
}

// get makes one HTTP request on a new connection to name:port, resolving
// name through the hosts file.
func (f *fwd) get(t *testing.T, name string, port int) (string, error) {
	t.Helper()
	a, ok := f.addr(name)
	if !ok {
		return "", fmt.Errorf("%s is not in the hosts file", name)
	}
	return httpGet(net.JoinHostPort(a, fmt.Sprint(port)))
}

func httpGet(addr string) (string, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Every forwardable Service of the demo seed answers by name, from the right
// pods; what cannot be forwarded is left out.
func TestDemoServicesAnswerByName(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"demo", "demo2"}})
	for _, name := range []string{"web", "web.demo2", "api", "cache", "db", "db-0.db", "db-1.db", "legacy", "dns"} {
		f.waitName(t, name)
	}
	for _, tc := range []struct {
		name   string
		port   int
		prefix string
	}{
		{"web", 80, "pod=demo/web-"},
		{"web.demo", 80, "pod=demo/web-"},
		{"web.demo.svc.cluster.local", 80, "pod=demo/web-"},
		{"web.demo2", 80, "pod=demo2/web-"},
		{"api", 8080, "pod=demo/api-"},
		{"cache", 6379, "pod=demo/cache-"},
		{"db-0.db", 5432, "pod=demo/db-0 "},
		{"db-1.db", 5432, "pod=demo/db-1 "},
		{"db", 5432, "pod=demo/db-"},
		{"legacy", 8080, "pod=demo/api-"},
		{"dns", 53, "pod=demo/dns-"},
	} {
		body, err := f.get(t, tc.name, tc.port)
		if err != nil || !strings.HasPrefix(body, tc.prefix) {
			t.Errorf("%s:%d answered %q, %v; want %s…", tc.name, tc.port, body, err, tc.prefix)
		}
	}
	if _, ok := f.addr("external"); ok {
		t.Error("the ExternalName Service got a hosts entry")
	}

	// web spreads new connections over both pods.
	seen := map[string]bool{}
	for range 10 {
		body, err := f.get(t, "web", 80)
		if err != nil {
			t.Fatal(err)
		}
		seen[body] = true
	}
	if len(seen) != 2 {
		t.Errorf("10 connections to web reached %d pods, want 2: %v", len(seen), seen)
	}

	// Shutdown removes our block and leaves the rest.
	f.stop()
	data, _ := os.ReadFile(f.hostsPath)
	if string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file after shutdown:\n%s", data)
	}
}

// Names resolve through the system resolver: a private mount namespace sees
// the engine's hosts file as /etc/hosts (the machine's own is never touched).
func TestNamesResolveThroughEtcHosts(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"demo"}})
	want := f.waitName(t, "db-1.db")
	out, err := exec.Command("unshare", "-m", "sh", "-c",
		"mount --bind \"$0\" /etc/hosts && getent hosts db-1.db", f.hostsPath).CombinedOutput()
	if err != nil {
		clustertest.Skip(t, "cannot make a private mount namespace (unshare -m needs root): %v: %s", err, out)
	}
	if fields := strings.Fields(string(out)); len(fields) < 2 || fields[0] != want {
		t.Fatalf("getent hosts db-1.db in the namespace = %q, want %s", out, want)
	}
	if body, err := httpGet(want + ":5432"); err != nil || !strings.HasPrefix(body, "pod=demo/db-1 ") {
		t.Fatalf("db-1.db:5432 = %q, %v", body, err)
	}
}

// app creates a Deployment and a Service (port 80) of n pods.
func app(t *testing.T, c *cluster.Cluster, ns, name string, n int32) {
	t.Helper()
	if _, err := c.CreateApp(t.Context(), ns, name, n, 80); err != nil {
		t.Fatal(err)
	}
}

// Deleting the pod that served a connection changes nothing for clients:
// the address stays, and every connection made meanwhile succeeds. The pod
// terminates as a well-behaved one does (the harness's backends drain: no
// new connections, every accepted one answered); one that drops requests it
// accepted loses them whoever forwards to it.
func TestPodDeletionLosesNoConnection(t *testing.T) {
	c := clustertest.Shared(t)
	app(t, c, "churn", "web", 2)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"churn"}})
	before := f.waitName(t, "web")
	body, err := f.get(t, "web", 80)
	if err != nil {
		t.Fatal(err)
	}
	victim := strings.Fields(strings.TrimPrefix(body, "pod=churn/"))[0]

	var failures, total atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 100; i++ {
			total.Add(1)
			if _, err := f.get(t, "web", 80); err != nil {
				failures.Add(1)
				t.Logf("connection %d: %v", i, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)
	if err := c.DeletePod(t.Context(), "churn", victim); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d connections failed during the deletion of %s", n, total.Load(), victim)
	}
	if after, _ := f.addr("web"); after != before {
		t.Errorf("web moved from %s to %s", before, after)
	}
}

// Scaled to zero, connections wait for a pod instead of failing, and succeed
// once one is back.
func TestScaleToZeroAndBack(t *testing.T) {
	c := clustertest.Shared(t)
	app(t, c, "zero", "web", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"zero"}, wait: 30 * time.Second})
	f.waitName(t, "web")
	if _, err := f.get(t, "web", 80); err != nil {
		t.Fatal(err)
	}
	if err := c.Scale(t.Context(), "deployment", "zero", "web", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitServiceReady(t.Context(), "zero", "web", 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		body, err := f.get(t, "web", 80)
		if err == nil && !strings.HasPrefix(body, "pod=zero/web-") {
			err = fmt.Errorf("body %q", body)
		}
		result <- err
	}()
	time.Sleep(time.Second) // the connection is now waiting
	if err := c.Scale(t.Context(), "deployment", "zero", "web", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("the waiting connection failed: %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the waiting connection never completed")
	}
}

// A StatefulSet pod keeps its address and names across a restart, and so do
// all Services across a restart of kubefwd.
func TestAddressesAreStable(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if err := c.CreateNamespace(ctx, "stable"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "stable", Name: "db", Selector: "db", Headless: true,
		Ports: []corev1.ServicePort{cluster.ServicePort("pg", 5432, intstr.FromInt32(5432))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateStatefulSet(ctx, "stable", "db", "db", 2, cluster.ContainerPort("pg", 5432)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitServiceReady(ctx, "stable", "db", 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"stable"}, statePath: state})
	db0 := f.waitName(t, "db-0.db")
	svc := f.waitName(t, "db")

	old, err := c.Clientset.CoreV1().Pods("stable").Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePod(ctx, "stable", "db-0"); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		p, err := c.Clientset.CoreV1().Pods("stable").Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && p.UID != old.UID, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitServiceReady(ctx, "stable", "db", 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	var body string
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		body, err = f.get(t, "db-0.db", 5432)
		return err == nil, nil
	})
	if err != nil || !strings.HasPrefix(body, "pod=stable/db-0 ") {
		t.Fatalf("db-0.db after the restart: %q, %v", body, err)
	}
	if now, _ := f.addr("db-0.db"); now != db0 {
		t.Errorf("db-0.db moved from %s to %s across the pod's restart", db0, now)
	}

	f.stop()
	g := startEngine(t, c, fwdOptions{namespaces: []string{"stable"}, statePath: state})
	if a := g.waitName(t, "db"); a != svc {
		t.Errorf("db moved from %s to %s across a restart of kubefwd", svc, a)
	}
	if a := g.waitName(t, "db-0.db"); a != db0 {
		t.Errorf("db-0.db moved from %s to %s across a restart of kubefwd", db0, a)
	}
}

// Services and ports that appear or go while kubefwd runs are followed.
func TestFollowsServiceChanges(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	app(t, c, "live", "first", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"live"}})
	f.waitName(t, "first")

	// A Service created after start becomes reachable.
	app(t, c, "live", "second", 1)
	f.waitName(t, "second")
	if body, err := f.get(t, "second", 80); err != nil || !strings.HasPrefix(body, "pod=live/second-") {
		t.Fatalf("new Service: %q, %v", body, err)
	}

	// A port added to a Service starts listening.
	svc, err := c.Clientset.CoreV1().Services("live").Get(ctx, "second", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports = append(svc.Spec.Ports, cluster.ServicePort("alt", 8081, intstr.FromString("http")))
	if _, err := c.Clientset.CoreV1().Services("live").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		body, err := f.get(t, "second", 8081)
		return err == nil && strings.HasPrefix(body, "pod=live/second-"), nil
	})
	if err != nil {
		t.Fatalf("added port 8081 never answered: %v", err)
	}

	// A deleted Service leaves the hosts file and closes its listener.
	addr, _ := f.addr("second")
	if err := c.Clientset.CoreV1().Services("live").Delete(ctx, "second", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		_, ok := f.addr("second")
		return !ok, nil
	})
	if err != nil {
		t.Fatal("deleted Service still in the hosts file")
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), 2*time.Second); err == nil {
		conn.Close()
		t.Error("the deleted Service's listener still accepts connections")
	}
	if body, err := f.get(t, "first", 80); err != nil || !strings.HasPrefix(body, "pod=live/first-") {
		t.Errorf("the other Service was disturbed: %q, %v", body, err)
	}
}

// The apiserver going away for 10 s closes no listener, and forwarding works
// again within 5 s of its return.
func TestSurvivesAPIServerRestart(t *testing.T) {
	c := clustertest.New(t)
	app(t, c, "outage", "web", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"outage"}, wait: 5 * time.Second})
	addr := f.waitName(t, "web")
	if _, err := f.get(t, "web", 80); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), 2*time.Second)
		if err != nil {
			t.Fatalf("the listener closed during the outage: %v", err)
		}
		conn.Close()
		time.Sleep(time.Second)
	}
	if err := c.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Each attempt may take only the time left: a success that arrives
	// later does not count.
	const bound = 5 * time.Second
	deadline = time.Now().Add(bound)
	var last error
	for left := time.Until(deadline); left > 0; left = time.Until(deadline) {
		client := &http.Client{Timeout: left, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + net.JoinHostPort(addr, "80") + "/")
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && strings.HasPrefix(string(body), "pod=outage/web-") && time.Now().Before(deadline) {
				return
			}
			err = fmt.Errorf("answer %q, %v", body, rerr)
		}
		last = err
		time.Sleep(min(200*time.Millisecond, max(time.Until(deadline), 0)))
	}
	t.Fatalf("forwarding did not work within %s of the apiserver's return: %v", bound, last)
}

// Two contexts at once, each with a Service of the same name: the first
// context's gets the short name, the second's its context-suffixed ones.
func TestTwoContexts(t *testing.T) {
	one := clustertest.Shared(t)
	two := clustertest.New(t)
	app(t, one, "twin", "web", 1)
	app(t, two, "twin", "web", 1)
	// Both clusters in one kubeconfig, as KUBECONFIG=a:b merges them.
	t.Setenv("KUBECONFIG", one.Kubeconfig+string(os.PathListSeparator)+two.Kubeconfig)
	f := startEngine(t, one, fwdOptions{namespaces: []string{"twin"}, contexts: []string{one.Context, two.Context}, kubeconfig: " "})
	short := f.waitName(t, "web")
	other := f.waitName(t, "web."+two.Context)
	if short == other {
		t.Fatalf("both clusters' web got %s", short)
	}
	for name, wantCluster := range map[string]*cluster.Cluster{"web": one, "web." + two.Context: two, "web.twin." + one.Context: one, "web.twin." + two.Context: two} {
		body, err := f.get(t, name, 80)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		pod := strings.Fields(strings.TrimPrefix(body, "pod=twin/"))[0]
		if _, err := wantCluster.Clientset.CoreV1().Pods("twin").Get(t.Context(), pod, metav1.GetOptions{}); err != nil {
			t.Errorf("%s answered from %s, which is not in cluster %s", name, pod, wantCluster.Name)
		}
	}
}

// Changes to a Service's selector, ports and type apply while running.
func TestServiceUpdatesApplyLive(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	app(t, c, "updates", "blue", 1)
	app(t, c, "updates", "green", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"updates"}})
	f.waitName(t, "blue")
	if body, err := f.get(t, "blue", 80); err != nil || !strings.HasPrefix(body, "pod=updates/blue-") {
		t.Fatalf("blue: %q, %v", body, err)
	}
	update := func(mut func(*corev1.Service)) {
		t.Helper()
		svc, err := c.Clientset.CoreV1().Services("updates").Get(ctx, "blue", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mut(svc)
		if _, err := c.Clientset.CoreV1().Services("updates").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Selector: the Service now picks green's pods.
	update(func(s *corev1.Service) { s.Spec.Selector = map[string]string{cluster.AppLabel: "green"} })
	err := cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		body, err := f.get(t, "blue", 80)
		return err == nil && strings.HasPrefix(body, "pod=updates/green-"), nil
	})
	if err != nil {
		t.Fatal("the selector change was not followed")
	}
	addr, _ := f.addr("blue")

	// Port renumbered: 80 closes, 8000 opens.
	update(func(s *corev1.Service) { s.Spec.Ports[0].Port = 8000 })
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		body, err := f.get(t, "blue", 8000)
		return err == nil && strings.HasPrefix(body, "pod=updates/green-"), nil
	})
	if err != nil {
		t.Fatal("the new port never answered")
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), 2*time.Second); err == nil {
		conn.Close()
		t.Error("the removed port still listens")
	}

	// Type: ExternalName is not forwardable, so the entry goes.
	update(func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = "example.com"
		s.Spec.Selector = nil
		s.Spec.ClusterIP = ""
		s.Spec.ClusterIPs = nil
	})
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		_, ok := f.addr("blue")
		return !ok, nil
	})
	if err != nil {
		t.Fatal("a Service turned ExternalName is still forwarded")
	}
	if body, err := f.get(t, "green", 80); err != nil || !strings.HasPrefix(body, "pod=updates/green-") {
		t.Errorf("green was disturbed: %q, %v", body, err)
	}
}

// Without WebSocket port-forwarding on the apiserver, forwarding falls back
// to SPDY and works the same.
func TestForwardingFallsBackToSPDY(t *testing.T) {
	c := clustertest.New(t, "kube-apiserver=feature-gates=PortForwardWebsockets=false")
	app(t, c, "spdy", "web", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"spdy"}})
	f.waitName(t, "web")
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=spdy/web-") {
		t.Fatalf("web over SPDY: %q, %v", body, err)
	}
}

// -A forwards every namespace; the context's own namespace gets the short
// names, the others svc.ns.
func TestAllNamespaces(t *testing.T) {
	c := clustertest.New(t)
	app(t, c, "default", "home", 1)
	app(t, c, "elsewhere", "away", 1)
	f := startEngine(t, c, fwdOptions{all: true})
	f.waitName(t, "home")
	f.waitName(t, "away.elsewhere")
	if _, ok := f.addr("away"); ok {
		t.Error("a Service outside the context's namespace got the bare name")
	}
	for name, prefix := range map[string]string{"home": "pod=default/home-", "away.elsewhere": "pod=elsewhere/away-"} {
		if body, err := f.get(t, name, 80); err != nil || !strings.HasPrefix(body, prefix) {
			t.Errorf("%s: %q, %v", name, body, err)
		}
	}
	if _, ok := f.addr("kubernetes.default"); ok {
		t.Error("the apiserver's own Service (no pod endpoints) was forwarded")
	}
}

// Refresh drops every tunnel; forwarding goes on over new ones.
func TestRefreshReopensTunnels(t *testing.T) {
	c := clustertest.Shared(t)
	app(t, c, "refresh", "web", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"refresh"}})
	f.waitName(t, "web")
	if _, err := f.get(t, "web", 80); err != nil {
		t.Fatal(err)
	}
	dials := func() (n int64) {
		for _, tu := range f.engine.Status().Tunnels {
			n += tu.Dials
		}
		return n
	}
	before := dials()
	f.engine.Refresh()
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=refresh/web-") {
		t.Fatalf("after Refresh: %q, %v", body, err)
	}
	// The connection after the refresh went over a new tunnel.
	if after := dials(); after != before+1 {
		t.Errorf("tunnel dials: %d before Refresh, %d after it and one connection; want one more", before, after)
	}
}

// Status tells every demo forward's state, and counts traffic.
func TestStatus(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"demo"}})
	f.waitName(t, "web")
	f.waitName(t, "db-1.db")
	if _, err := f.get(t, "web", 80); err != nil {
		t.Fatal(err)
	}
	byName := map[string]api.Forward{}
	// Bytes are counted just after they are passed on: allow a moment.
	_ = cluster.Poll(t.Context(), 5*time.Second, func(context.Context) (bool, error) {
		for _, fs := range f.engine.Status().Forwards {
			key := fs.Service
			if fs.Pod != "" {
				key = fs.Pod + "." + fs.Service
			}
			byName[key] = fs
		}
		web := byName["web"]
		return len(web.Ports) == 1 && web.Ports[0].BytesIn > 0 && web.Ports[0].BytesOut > 0, nil
	})
	web := byName["web"]
	if web.State != api.StateActive || len(web.Ports) != 1 || len(web.Ports[0].Endpoints) != 2 ||
		web.Ports[0].BytesIn == 0 || web.Ports[0].BytesOut == 0 {
		t.Errorf("web = %+v", web)
	}
	// web's first connection went on a WebSocket of its own.
	if tun := f.engine.Status().Tunnels; len(tun) != 1 || tun[0].Direct < 1 || tun[0].DialFailures != 0 {
		t.Errorf("tunnel stats = %+v", tun)
	}
	if ext := byName["external"]; ext.State != api.StateNotForwarded || !strings.Contains(ext.Reason, "ExternalName") {
		t.Errorf("external = %+v", ext)
	}
	if dns := byName["dns"]; dns.State != api.StateActive || len(dns.Skipped) != 1 || !strings.Contains(dns.Skipped[0], "UDP") {
		t.Errorf("dns = %+v", dns)
	}
	if db1 := byName["db-1.db"]; db1.State != api.StateActive || db1.Address == "" || len(db1.Ports[0].Endpoints) != 1 {
		t.Errorf("db-1 = %+v", db1)
	}
}

// A connection that cannot be carried is counted, explained in status, and
// reported to event followers; the forward says it waits for endpoints.
func TestFailedConnectionReported(t *testing.T) {
	c := clustertest.Shared(t)
	app(t, c, "nopods", "web", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"nopods"}, wait: time.Second})
	f.waitName(t, "web")
	sub := f.engine.Subscribe()
	defer sub.Close()
	if err := c.Scale(t.Context(), "deployment", "nopods", "web", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitServiceReady(t.Context(), "nopods", "web", 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		for _, fs := range f.engine.Status().Forwards {
			if fs.Service == "web" {
				return fs.State == api.StateWaiting, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("web never showed as waiting: %+v", f.engine.Status().Forwards)
	}
	if body, err := f.get(t, "web", 80); err == nil {
		t.Fatalf("a connection with no pod to go to succeeded: %q", body)
	}
	var web api.Forward
	_ = cluster.Poll(t.Context(), 5*time.Second, func(context.Context) (bool, error) {
		for _, fs := range f.engine.Status().Forwards {
			if fs.Service == "web" {
				web = fs
			}
		}
		// The count and the error are recorded one after the other.
		return len(web.Ports) == 1 && web.Ports[0].Failed > 0 && web.Ports[0].LastError != "", nil
	})
	if len(web.Ports) != 1 || web.Ports[0].Failed != 1 || !strings.Contains(web.Ports[0].LastError, "no ready endpoint") || web.Ports[0].LastErrorAt == nil {
		t.Errorf("web after a failed connection: %+v", web)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatal("subscription closed")
			}
			if ev.Type == api.EventConnectionFailed && ev.Service == "web" && strings.Contains(ev.Message, "no ready endpoint") {
				return
			}
		case <-deadline:
			t.Fatal("no connection-failed event")
		}
	}
}

// Whoever can create objects in a forwarded namespace cannot take names away
// from the machine nor make kubefwd listen on a wrapped port: a Service or
// namespace named localhost and --domain localhost lose only the names
// under localhost, an EndpointSlice's impossible target port and a second
// port wanting a taken local port are "not forwarded" with the reason, and
// everything else is published and answers.
func TestHostileNamesAndPortsSkippedOneByOne(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	app(t, c, "odd", "web", 1)
	app(t, c, "localhost", "web", 1)
	http := cluster.ServicePort("http", 80, intstr.FromString("http"))
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "odd", Name: "localhost", Selector: "web", Ports: []corev1.ServicePort{http}}); err != nil {
		t.Fatal(err)
	}
	// Without a selector, the EndpointSlice is whatever its author wrote:
	// the apiserver does not check its port numbers.
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "odd", Name: "manual", Ports: []corev1.ServicePort{
		http, cluster.ServicePort("alt", 8080, intstr.FromInt32(8080)), cluster.ServicePort("admin", 81, intstr.FromInt32(81)),
	}}); err != nil {
		t.Fatal(err)
	}
	pods, err := c.Pods(ctx, "odd", "web")
	if err != nil || len(pods) != 1 {
		t.Fatalf("pods of odd/web: %v, %v", pods, err)
	}
	pod := pods[0]
	_, err = c.Clientset.DiscoveryV1().EndpointSlices("odd").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "manual-odd", Namespace: "odd", Labels: map[string]string{
			discoveryv1.LabelServiceName: "manual", discoveryv1.LabelManagedBy: "kubefwd-test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{pod.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "odd", Name: pod.Name, UID: pod.UID},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("alt"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("admin"), Port: ptr.To[int32](70000), Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the apiserver refused an EndpointSlice with port 70000 (then this case cannot arise): %v", err)
	}

	// 80 onto 8080, where the Service's own port 8080 would listen too.
	f := startEngine(t, c, fwdOptions{namespaces: []string{"odd", "localhost"}, domain: "localhost", mapping: catalog.Mapping{80: 8080}})
	for name, want := range map[string]string{
		"localhost.odd":                   "pod=odd/web-",
		"localhost.odd.svc.cluster.local": "pod=odd/web-",
		"web":                             "pod=odd/web-",
		"web.localhost.svc":               "pod=localhost/web-",
		"web.localhost.svc.cluster.local": "pod=localhost/web-",
		"manual.odd":                      "pod=odd/web-",
		"manual.odd.svc":                  "pod=odd/web-",
	} {
		f.waitName(t, name)
		var body string
		err := cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
			body, err = f.get(t, name, 8080)
			return err == nil, nil
		})
		if err != nil || !strings.HasPrefix(body, want) {
			t.Errorf("%s:8080 answered %q, %v; want %s…", name, body, err, want)
		}
	}

	// Nothing under localhost is in the hosts file; the status says why.
	data, err := os.ReadFile(f.hostsPath)
	if err != nil {
		t.Fatal(err)
	}
	inBlock := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "# kubefwd begin "):
			inBlock = true
		case strings.HasPrefix(line, "# kubefwd end "):
			inBlock = false
		case inBlock:
			for _, name := range strings.Fields(line)[1:] {
				if name == "localhost" || strings.HasSuffix(name, ".localhost") {
					t.Errorf("the hosts block maps %s: %q", name, line)
				}
			}
		}
	}
	st := f.engine.Status()
	for _, name := range []string{"localhost", "localhost.localhost", "web.localhost", "localhost.odd.svc.cluster.localhost"} {
		found := false
		for _, s := range st.HostsSkipped {
			found = found || s.Name == name && strings.Contains(s.Reason, "reserved")
		}
		if !found {
			t.Errorf("status does not say why %s was left out: %+v", name, st.HostsSkipped)
		}
	}

	// manual: 81 does not listen (its target port is impossible), nor does
	// 80 (mapped to 8080, already answered above); alt gave way to http.
	addr, _ := f.addr("manual.odd")
	for _, port := range []string{"81", "80"} {
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, port), 2*time.Second); err == nil {
			conn.Close()
			t.Errorf("manual.odd listens on %s", port)
		}
	}
	var manual api.Forward
	for _, fs := range st.Forwards {
		if fs.Namespace == "odd" && fs.Service == "manual" {
			manual = fs
		}
	}
	skipped := strings.Join(manual.Skipped, "\n")
	for _, want := range []string{
		"admin (81/TCP): its EndpointSlices give target port 70000, outside 1-65535",
		"alt (8080/TCP): local port 8080 is already taken by port http (80/TCP)",
	} {
		if !strings.Contains(skipped, want) {
			t.Errorf("manual's skipped ports do not say %q: %+v", want, manual)
		}
	}
	if manual.State != api.StateActive || len(manual.Ports) != 1 || manual.Ports[0].Local != 8080 || manual.Ports[0].Port != 80 {
		t.Errorf("manual = %+v", manual)
	}
}

// A pod whose endpoint is still ready but whose container no longer
// answers (its process died; readiness has not noticed yet): every new
// connection is still carried, by the other pod, and status counts the
// retries that did it.
func TestFailoverFromDeadBackendBehindReadyEndpoint(t *testing.T) {
	c := clustertest.Shared(t)
	pods, err := c.CreateApp(t.Context(), "deadbackend", "web", 2, 80)
	if err != nil {
		t.Fatal(err)
	}
	f := startEngine(t, c, fwdOptions{namespaces: []string{"deadbackend"}})
	f.waitName(t, "web")
	if _, err := f.get(t, "web", 80); err != nil {
		t.Fatal(err)
	}
	// kwok carries the dead pod's streams to a port nothing listens on.
	deadBackend(t, c, "deadbackend", pods[0])
	retried := func() (n int64) {
		for _, fs := range f.engine.Status().Forwards {
			for _, p := range fs.Ports {
				n += p.Retried
			}
		}
		return n
	}
	// Until kwok has the new target, requests reach both pods; then only
	// the live one answers, after a retry when the dead one is picked.
	before := retried()
	deadline := time.Now().Add(30 * time.Second)
	failed, answered := 0, map[string]int{}
	for n := 0; retried() < before+2 && time.Now().Before(deadline); n++ {
		body, err := f.get(t, "web", 80)
		if err != nil || !strings.HasPrefix(body, "pod=deadbackend/web-") {
			failed++
			t.Errorf("connection %d failed: %q, %v", n, body, err)
			continue
		}
		answered[strings.Fields(body)[0]]++
	}
	if got := retried(); got < before+2 {
		t.Fatalf("status counted %d retries (before: %d); the dead backend was never picked, or its failures were not retried", got, before)
	}
	// Once retries happen, every connection is carried by the live pod, and
	// the dead one is tried once per cool-off, not by every connection.
	before = retried()
	start := time.Now()
	for range 20 {
		body, err := f.get(t, "web", 80)
		if err != nil || !strings.HasPrefix(body, "pod=deadbackend/"+pods[1]) {
			failed++
			t.Errorf("after the backend died: %q, %v", body, err)
		}
	}
	if got, most := retried()-before, 1+int64(time.Since(start)/forward.FailCoolOff); got > most {
		t.Errorf("20 connections in %s paid %d retries; the dead endpoint should be tried at most once per %s (%d)", time.Since(start).Round(time.Millisecond), got, forward.FailCoolOff, most)
	}
	if failed > 0 {
		t.Errorf("%d connections failed while a ready pod existed (answers: %v)", failed, answered)
	}
}

// Pausing a Service closes its listener and takes its names out of the
// hosts file, live, leaving the others alone; status says it is paused and
// by whom; resuming brings it back at the same address.
func TestPauseAndResume(t *testing.T) {
	c := clustertest.Shared(t)
	app(t, c, "pausing", "web", 1)
	app(t, c, "pausing", "api", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"pausing"}})
	addr := f.waitName(t, "web")
	f.waitName(t, "api")
	sub := f.engine.Subscribe()
	defer sub.Close()

	if _, err := f.engine.Pause([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("pausing an unknown service: %v", err)
	}
	done, err := f.engine.Pause([]string{"web"})
	if err != nil || !slices.Equal(done, []string{"pausing/web"}) {
		t.Fatalf("pause web: %v, %v", done, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, named := f.addr("web")
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), time.Second)
		if err == nil {
			conn.Close()
		}
		if !named && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web still named (%v) or listening (%v) after pause", named, err == nil)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body, err := f.get(t, "api", 80); err != nil || !strings.HasPrefix(body, "pod=pausing/api-") {
		t.Errorf("api, not paused: %q, %v", body, err)
	}
	var web api.Forward
	for _, fs := range f.engine.Status().Forwards {
		if fs.Service == "web" {
			web = fs
		}
	}
	if web.State != api.StatePaused || !strings.Contains(web.Reason, "by you") || web.Address != "" {
		t.Errorf("paused web's status: %+v", web)
	}
	sawPaused := false
	for !sawPaused {
		select {
		case ev := <-sub.Events():
			sawPaused = ev.Type == api.EventForward && ev.Service == "web" && ev.State == api.StatePaused
		case <-time.After(10 * time.Second):
			t.Fatal("no event says web is paused")
		}
	}
	if _, err := f.engine.Pause([]string{"web"}); err == nil {
		t.Error("pausing a paused service again was accepted as a new pause")
	}

	if _, err := f.engine.Resume([]string{"api"}); err == nil || !strings.Contains(err.Error(), "no paused service matches api") {
		t.Errorf("resuming a service that is not paused: %v", err)
	}
	// By the name it had.
	if done, err := f.engine.Resume([]string{"web"}); err != nil || !slices.Equal(done, []string{"pausing/web"}) {
		t.Fatalf("resume web: %v, %v", done, err)
	}
	if again := f.waitName(t, "web"); again != addr {
		t.Errorf("web came back at %s, not %s", again, addr)
	}
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=pausing/web-") {
		t.Errorf("web after resume: %q, %v", body, err)
	}
}

// The log of a forwarded Service's pod, read by the instance: the lines the
// pod printed (its backend logs each request), the last N, followed live;
// nothing outside the Service's own pods.
func TestLogs(t *testing.T) {
	c := clustertest.Shared(t)
	pods, err := c.CreateApp(t.Context(), "logs", "web", 2, 80)
	if err != nil {
		t.Fatal(err)
	}
	app(t, c, "logs", "api", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"logs"}})
	f.waitName(t, "web")
	f.waitName(t, "api")
	slices.Sort(pods)
	for range 4 { // round-robin: both pods answer and log
		if _, err := f.get(t, "web", 80); err != nil {
			t.Fatal(err)
		}
	}
	var src api.LogSource
	read := func(req api.LogsRequest) (string, error) {
		var b strings.Builder
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		err := f.engine.Logs(ctx, req, func(s api.LogSource) io.Writer { src = s; return &b })
		return b.String(), err
	}
	var out string
	err = cluster.Poll(t.Context(), 20*time.Second, func(context.Context) (bool, error) {
		out, err = read(api.LogsRequest{Service: "web"})
		return err == nil && strings.Count(out, "GET / from") >= 2, nil
	})
	if err != nil {
		t.Fatalf("the first pod's log (%s): %q, %v", pods[0], out, err)
	}
	if src.Pod != pods[0] || src.Container != "app" || !slices.Equal(src.Containers, []string{"app"}) {
		t.Errorf("log source %+v, want pod %s, its one container app", src, pods[0])
	}
	if out, err := read(api.LogsRequest{Service: "web", Pod: pods[1], Tail: 1}); err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, "GET / from") {
		t.Errorf("the last line of %s's log: %q, %v", pods[1], out, err)
	}

	// Followed: a request made now shows up, and cancelling ends it.
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- f.engine.Logs(ctx, api.LogsRequest{Service: "api", Tail: 1, Follow: true}, func(api.LogSource) io.Writer { return pw })
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() { // the tail: the readiness probe of app()
		t.Fatalf("followed log ended at once: %v", lines.Err())
	}
	if _, err := f.get(t, "api", 80); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		if lines.Scan() {
			got <- lines.Text()
		}
		close(got)
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, "GET / from") {
			t.Errorf("followed line %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Error("a request made while following did not show up")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("following ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("following did not end with its context")
	}

	var nf *api.NotFoundError
	for _, req := range []api.LogsRequest{{Service: "nope"}, {Service: "web", Pod: "api-0"}, {Service: "web", Container: "sidecar"}} {
		if _, err := read(req); !errors.As(err, &nf) {
			t.Errorf("%+v: %v, want a not-found error", req, err)
		}
	}
}

// A headless Service taken out of forwarding (paused here; deleted or
// unwatched goes through the same path) releases its pods' addresses with
// its own: the saved state shows them last used then, not still in use.
func TestRemovedServiceReleasesItsPods(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if err := c.CreateNamespace(ctx, "release"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "release", Name: "db", Selector: "db", Headless: true,
		Ports: []corev1.ServicePort{cluster.ServicePort("pg", 5432, intstr.FromInt32(5432))}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateStatefulSet(ctx, "release", "db", "db", 1, cluster.ContainerPort("pg", 5432)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitServiceReady(ctx, "release", "db", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"release"}, statePath: state})
	f.waitName(t, "db-0.db")
	if _, err := f.engine.Pause([]string{"db"}); err != nil {
		t.Fatal(err)
	}
	err := cluster.Poll(ctx, 10*time.Second, func(context.Context) (bool, error) {
		_, named := f.addr("db-0.db")
		return !named, nil
	})
	if err != nil {
		t.Fatal("db-0.db stayed in the hosts file")
	}
	released := time.Now()
	time.Sleep(2 * time.Second) // a save now would stamp anything still in use
	f.stop()

	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Addresses map[string]struct {
			LastUsed time.Time `json:"lastUsed"`
		} `json:"addresses"`
	}
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	found := 0
	for key, a := range saved.Addresses {
		if strings.HasSuffix(key, "/release/db") || strings.HasSuffix(key, "/release/db/db-0") {
			found++
			if a.LastUsed.After(released.Add(time.Second)) {
				t.Errorf("%s was still in use after its Service was removed (last used %s, removed by %s)", key, a.LastUsed.Format(time.StampMilli), released.Format(time.StampMilli))
			}
		}
	}
	if found != 2 {
		t.Errorf("the state holds %d of db's two addresses:\n%s", found, data)
	}
}

// A hosts write that fails is retried on its own: once the file can be
// written again the names appear, with no change to any Service. Until
// then status and events say why.
func TestHostsWriteRetried(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "hostsretry", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	var logs clustertest.Buffer
	f := startEngine(t, c, fwdOptions{namespaces: []string{"hostsretry"}, hostsDir: true, logs: &logs})
	sub := f.engine.Subscribe()
	defer sub.Close()
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		return strings.Contains(f.engine.Status().HostsError, "is a directory"), nil
	})
	if err != nil {
		t.Fatalf("status never said the hosts file could not be written: %q", f.engine.Status().HostsError)
	}
	// The event is sent before status changes.
	var got []api.Event
	for seen := false; !seen; {
		select {
		case ev := <-sub.Events():
			got = append(got, ev)
			seen = ev.Type == api.EventHostsError && strings.Contains(ev.Message, "is a directory")
		default:
			t.Fatalf("no %s event among %+v", api.EventHostsError, got)
		}
	}

	// Retried after 1 s and 2 s more, the same error logged once.
	time.Sleep(3500 * time.Millisecond)
	if n := strings.Count(logs.String(), "cannot update the hosts file"); n != 1 {
		t.Errorf("the same failure logged %d times, want once:\n%s", n, logs.String())
	}

	// Repaired behind kubefwd's back; nothing in the cluster changes.
	if err := os.Remove(f.hostsPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.waitName(t, "web")
	if msg := f.engine.Status().HostsError; msg != "" {
		t.Errorf("status still says the hosts file cannot be written: %q", msg)
	}
}

// The address state is written while the engine runs, and a write that
// fails is tried again on its own: once it can be written the new
// Service's address is on disk, with nothing else changing.
func TestStateSavedWhileRunningAndRetried(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if err := c.CreateNamespace(ctx, "stateretry"); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"stateretry"}, statePath: state})
	// A directory where the file goes: every save fails until it is gone.
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, "stateretry", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	f.waitName(t, "web")
	// Saves come within about a second of a change: by now one failed.
	time.Sleep(2 * time.Second)
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	err := cluster.Poll(ctx, 20*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(state)
		return strings.Contains(string(data), `/stateretry/web"`), nil
	})
	if err != nil {
		data, _ := os.ReadFile(state)
		t.Fatalf("the state file never held web while the engine ran:\n%s", data)
	}
}

// A burst of new Services is saved in a few writes, not one per Service.
func TestStateSavesBatched(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	const ns, n = "stateburst", 150
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	var logs clustertest.Buffer
	f := startEngine(t, c, fwdOptions{namespaces: []string{ns}, logs: &logs})
	start := time.Now()
	for i := range n {
		if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: ns, Name: fmt.Sprintf("svc-%d", i), Selector: "none",
			Ports: []corev1.ServicePort{cluster.ServicePort("http", 80, intstr.FromInt32(8080))}}); err != nil {
			t.Fatal(err)
		}
	}
	f.waitName(t, fmt.Sprintf("svc-%d", n-1))
	burst := time.Since(start)
	err := cluster.Poll(ctx, 10*time.Second, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), fmt.Sprintf(`msg="address state saved" entries=%d`, n)), nil
	})
	if err != nil {
		t.Fatalf("the state of all %d Services was never saved", n)
	}
	// At most two writes a second while they came, and the last.
	saves := strings.Count(logs.String(), `msg="address state saved"`)
	if limit := 2*int(burst.Seconds()+1) + 2; saves > limit {
		t.Errorf("%d Services created over %v made %d state writes, want at most %d", n, burst.Round(time.Millisecond), saves, limit)
	}
	t.Logf("%d Services over %v: %d state writes", n, burst.Round(time.Millisecond), saves)
}
