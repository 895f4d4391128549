package forward_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

type proxyFixture struct {
	addr     string
	eps      *forward.Endpoints
	counters *forward.Counters
	pool     *forward.Pool
}

// startProxy serves a loopback listener through a Proxy until the test ends.
// setup, if given, prepares the pool before anything uses it.
func startProxy(t *testing.T, dialer *forward.Dialer, opts forward.ProxyOptions, setup ...func(*forward.Pool)) *proxyFixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &proxyFixture{addr: ln.Addr().String(), eps: forward.NewEndpoints(false), counters: &forward.Counters{}}
	f.pool = forward.NewPool(dialer, 0)
	for _, fn := range setup {
		fn(f.pool)
	}
	proxy := forward.NewProxy(f.pool, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.pool.Run(ctx) })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { proxy.Serve(ctx, conn, "test", f.eps, f.counters) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return f
}

// newDialer is forward.NewDialer, failing the test on an error.
func newDialer(t *testing.T, cfg *rest.Config, opts forward.DialerOptions) *forward.Dialer {
	t.Helper()
	d, err := forward.NewDialer(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// proxyToNewPod creates a one-pod app in namespace ns and serves a proxy
// whose only endpoint is that pod's port 8080; setup, if given, prepares
// the pool with the proxy's dialer.
func proxyToNewPod(t *testing.T, c *cluster.Cluster, ns string, opts forward.ProxyOptions, setup ...func(*forward.Pool, *forward.Dialer)) (*proxyFixture, *forward.Dialer, forward.Pod) {
	t.Helper()
	pods := app(t, c, ns, "web", 1)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	f := startProxy(t, d, opts, func(p *forward.Pool) {
		for _, fn := range setup {
			fn(p, d)
		}
	})
	pod := forward.Pod{Namespace: ns, Name: pods[0]}
	f.eps.Set([]forward.Endpoint{{Pod: pod, Port: 8080}})
	return f, d, pod
}

// fresh sends one request on a new TCP connection (no keep-alive) and
// returns the body.
func fresh(t *testing.T, addr, method, path string, body io.Reader) (string, error) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Connections spread over the ready pods, round-robin, and carry large
// bodies both ways intact.
func TestProxyBalancesAndCarries(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "proxy", "web", 2)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	f := startProxy(t, d, forward.ProxyOptions{})
	f.eps.Set([]forward.Endpoint{
		{Pod: forward.Pod{Namespace: "proxy", Name: pods[0]}, Port: 8080},
		{Pod: forward.Pod{Namespace: "proxy", Name: pods[1]}, Port: 8080},
	})

	seen := map[string]int{}
	for range 10 {
		body, err := fresh(t, f.addr, http.MethodGet, "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[body]++
	}
	if len(seen) != 2 || seen["pod=proxy/"+pods[0]+" port=8080\n"] != 5 {
		t.Fatalf("10 connections went to %v, want 5 to each pod", seen)
	}
	if f.pool.Len() != 2 {
		t.Errorf("%d tunnels for 2 pods", f.pool.Len())
	}

	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	echo, err := fresh(t, f.addr, http.MethodPost, "/echo", bytes.NewReader(payload))
	if err != nil || echo != string(payload) {
		t.Fatalf("echo of 1 MiB: %d bytes back, %v", len(echo), err)
	}
	// The proxy counts a chunk just after handing it on: allow it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (f.counters.BytesOut.Load() < int64(len(payload)) || f.counters.BytesIn.Load() < int64(len(payload))) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.counters.BytesOut.Load() < int64(len(payload)) || f.counters.BytesIn.Load() < int64(len(payload)) {
		t.Errorf("counters in=%d out=%d after a 1 MiB echo", f.counters.BytesIn.Load(), f.counters.BytesOut.Load())
	}
}

// A stream that fails before any byte comes back is retried on another
// endpoint with what the client had sent: the client sees no error.
func TestProxyRetriesBeforeFirstByte(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "retry", "web", 1)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	f := startProxy(t, d, forward.ProxyOptions{})
	pod := forward.Pod{Namespace: "retry", Name: pods[0]}
	// Port 9999 is declared nowhere: the kubelet refuses it.
	f.eps.Set([]forward.Endpoint{{Pod: pod, Port: 9999}, {Pod: pod, Port: 8080}})

	for i := range 6 {
		body, err := fresh(t, f.addr, http.MethodPost, "/echo", strings.NewReader("hello"))
		if err != nil || body != "hello" {
			t.Fatalf("connection %d: %q, %v", i, body, err)
		}
	}
	if f.counters.Retried.Load() == 0 {
		t.Error("no stream was retried, yet half the picks went to a dead port")
	}
	if f.counters.Failed.Load() != 0 {
		t.Errorf("%d connections failed", f.counters.Failed.Load())
	}
}

// With no ready endpoint a connection waits, bounded: it succeeds if one
// appears in time and is closed otherwise.
func TestProxyWaitsForEndpoints(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "waiting", "web", 1)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	f := startProxy(t, d, forward.ProxyOptions{WaitForEndpoint: 3 * time.Second})

	if _, err := fresh(t, f.addr, http.MethodGet, "/", nil); err == nil {
		t.Fatal("a connection with no endpoint at all succeeded")
	}
	if f.counters.Failed.Load() != 1 {
		t.Errorf("failed = %d, want 1", f.counters.Failed.Load())
	}

	go func() {
		time.Sleep(500 * time.Millisecond)
		f.eps.Set([]forward.Endpoint{{Pod: forward.Pod{Namespace: "waiting", Name: pods[0]}, Port: 8080}})
	}()
	body, err := fresh(t, f.addr, http.MethodGet, "/", nil)
	if err != nil || body != "pod=waiting/"+pods[0]+" port=8080\n" {
		t.Fatalf("connection that waited for an endpoint: %q, %v", body, err)
	}
}

// When every endpoint refuses, a connection keeps trying (with pauses) until
// WaitForEndpoint has passed: a pod that turned ready a moment before its
// server listened, or endpoints not yet updated, cost the client nothing.
func TestProxyRetriesWhileAllRefuse(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "refusing", "web", 1)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	f := startProxy(t, d, forward.ProxyOptions{WaitForEndpoint: 20 * time.Second})
	pod := forward.Pod{Namespace: "refusing", Name: pods[0]}
	f.eps.Set([]forward.Endpoint{{Pod: pod, Port: 9999}}) // refused by the kubelet
	go func() {
		time.Sleep(time.Second)
		f.eps.Set([]forward.Endpoint{{Pod: pod, Port: 8080}})
	}()
	body, err := fresh(t, f.addr, http.MethodPost, "/echo", strings.NewReader("still here"))
	if err != nil || body != "still here" {
		t.Fatalf("connection while every endpoint refused: %q, %v", body, err)
	}
	if f.counters.Failed.Load() != 0 {
		t.Errorf("failed = %d", f.counters.Failed.Load())
	}
	if st := f.counters.Trouble.State(); st.Err != nil {
		t.Errorf("trouble after the connection got through: %+v", st)
	}

	// With nothing but refusals, it gives up at the deadline.
	g := startProxy(t, d, forward.ProxyOptions{WaitForEndpoint: 2 * time.Second})
	g.eps.Set([]forward.Endpoint{{Pod: pod, Port: 9999}})
	start := time.Now()
	if _, err := fresh(t, g.addr, http.MethodGet, "/", nil); err == nil {
		t.Fatal("a connection to a refusing port succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("gave up after %s, want about 2s", took)
	}
	if g.counters.Failed.Load() != 1 {
		t.Errorf("failed = %d, want 1", g.counters.Failed.Load())
	}
	// The port says why, and that nobody is waiting to retry.
	if st := g.counters.Trouble.State(); st.Err == nil || !strings.Contains(st.Err.Error(), "9999") || !st.RetryAt.IsZero() || st.Forbidden {
		t.Errorf("trouble after giving up = %+v, want the refusal and no retry pending", st)
	}
}

// A client that stops reading a download holds up its tunnel: everything
// the pod sends after it waits in the same connection (SPDY has no flow
// control per stream), so a new stream on that tunnel would wait behind
// it. The proxy takes such a tunnel out of use, and the next connection to
// the pod gets a tunnel of its own and its answer at once; the stalled
// download goes on when its client reads again.
func TestProxySlowReaderDoesNotHoldUpOthers(t *testing.T) {
	c := clustertest.Shared(t)
	f, _, _ := proxyToNewPod(t, c, "slowreader", forward.ProxyOptions{})

	// A download its client does not read: the pod's bytes back up.
	slow, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	const size = 64 << 20
	if _, err := fmt.Fprintf(slow, "GET /bytes?n=%d HTTP/1.1\r\nHost: slow\r\nConnection: close\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4096)
	if _, err := io.ReadFull(slow, head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let the backlog build

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + f.addr + "/")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("a request behind a stalled download failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}

	// The stalled download still completes once read, also after a pause
	// longer than a refresh's grace.
	time.Sleep(forward.RetireGrace + time.Second)
	slow.SetReadDeadline(time.Now().Add(2 * time.Minute))
	// Read to the last byte the Content-Length promises (kwok does not pass
	// the pod's close on while the client holds its side open).
	body := len(head) - (bytes.Index(head, []byte("\r\n\r\n")) + 4)
	if n, err := io.CopyN(io.Discard, slow, size-int64(body)); err != nil {
		t.Fatalf("the stalled download read %d more bytes, then %v", n, err)
	}
}

// A client that reads a download steadily but slower than the pod sends it
// never blocks long enough to count as slow, yet the tunnel's backlog grows
// and the answer to a new stream waits behind it. The next connection to
// the pod must not wait for that (nor be cut after the stream timeout, which
// would also cut the download): it goes on a tunnel of its own.
func TestProxyThrottledDownloadDoesNotHoldUpOthers(t *testing.T) {
	c := clustertest.Shared(t)
	// Only the congestion of the tunnel is under test here: a client slow
	// enough to block a write for long is caught earlier, by SlowClient
	// (see above), and a request coming in before it is caught is in the
	// case below.
	f, _, _ := proxyToNewPod(t, c, "throttled", forward.ProxyOptions{SlowClient: time.Hour})

	dl, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if _, err := fmt.Fprintf(dl, "GET /bytes?n=%d HTTP/1.1\r\nHost: dl\r\nConnection: close\r\n\r\n", 1<<30); err != nil {
		t.Fatal(err)
	}
	// 16 KiB every 50 ms (320 KiB/s): a write to this client blocks for
	// about 50 ms at a time, far below what counts as a slow client.
	var got atomic.Int64
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, 16<<10)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				readErr <- nil
				return
			case <-tick.C:
			}
			_ = dl.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.ReadFull(dl, buf)
			got.Add(int64(n))
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	defer close(stop)
	time.Sleep(3 * time.Second) // let the backlog build

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 3 {
		start := time.Now()
		resp, err := client.Get("http://" + f.addr + "/")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			t.Fatalf("request %d beside a throttled download failed after %s: %v", i+1, time.Since(start).Round(time.Millisecond), err)
		}
		t.Logf("request %d took %s", i+1, time.Since(start).Round(time.Millisecond))
	}

	// The download was not cut: it still moves.
	before := got.Load()
	select {
	case err := <-readErr:
		t.Fatalf("the throttled download ended after %d bytes: %v", before, err)
	case <-time.After(time.Second):
	}
	if after := got.Load(); after <= before {
		t.Fatalf("the throttled download stopped moving at %d bytes", after)
	}
}

// When the kubelet restarts, the tunnels through it may stay open on our
// side with nobody behind them. The next connection must not wait out the
// stream timeout on such a tunnel: a silent tunnel that does not answer a
// new stream within a few seconds is left behind for a new one.
func TestProxyDeadTunnelAfterKubeletRestart(t *testing.T) {
	c := clustertest.New(t)
	f, d, pod := proxyToNewPod(t, c, "deadtunnel", forward.ProxyOptions{})
	if _, err := fresh(t, f.addr, "GET", "/", nil); err != nil {
		t.Fatal(err) // the tunnel is open
	}

	ctx := t.Context()
	if err := c.StopComponent(ctx, cluster.KwokController); err != nil {
		t.Fatal(err)
	}
	if err := c.StartComponent(ctx, cluster.KwokController); err != nil {
		t.Fatal(err)
	}
	// A new kwok serves port-forward once it holds its node again.
	if err := cluster.Poll(ctx, time.Minute, func(context.Context) (bool, error) {
		tun, err := d.Dial(ctx, pod)
		if err != nil {
			return false, nil
		}
		defer tun.Close()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := tun.Open(sctx, 8080)
		if err != nil {
			return false, nil
		}
		s.Close()
		return true, nil
	}); err != nil {
		t.Fatalf("the restarted kwok does not serve port-forward: %v", err)
	}

	// Within the stream timeout (10 s): not waiting it out on the old tunnel.
	client := &http.Client{Timeout: 8 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + f.addr + "/")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("the first request after a kubelet restart failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("the first request after a kubelet restart took %s", time.Since(start).Round(time.Millisecond))
}
