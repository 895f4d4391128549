package forward_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// roundTrip sends req on a direct stream of its own and returns the body.
func roundTrip(t *testing.T, d *forward.Dialer, pod forward.Pod, port int32, req *http.Request) (string, error) {
	t.Helper()
	s, err := d.DialDirect(t.Context(), pod, port)
	if err != nil {
		return "", err
	}
	defer s.Close()
	req.Close = true
	if err := req.Write(s); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(s), req)
	if err != nil {
		return "", errors.Join(err, s.RemoteErr(2*time.Second))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// Direct streams carry requests and large bodies both ways, many at once,
// each on a WebSocket of its own; a port nothing serves is the kubelet's
// verdict, a RemoteError.
func TestDirectStreams(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "direct", "web", 1)
	pod := forward.Pod{Namespace: "direct", Name: pods[0]}
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})

	want := fmt.Sprintf("pod=direct/%s port=8080\n", pods[0])
	sameAnswers(t, 20, want, func() (string, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://pod/", nil)
		return roundTrip(t, d, pod, 8080, req)
	})

	req, _ := http.NewRequest(http.MethodGet, "http://pod/bytes?n=3000000", nil)
	if body, err := roundTrip(t, d, pod, 8080, req); err != nil || len(body) != 3000000 {
		t.Fatalf("/bytes: %d bytes, %v", len(body), err)
	}
	// Larger than a message: sent in several, each one frame.
	upload := bytes.Repeat([]byte("0123456789abcdef"), 200_000)
	req, _ = http.NewRequest(http.MethodPost, "http://pod/echo", bytes.NewReader(upload))
	if body, err := roundTrip(t, d, pod, 8080, req); err != nil || body != string(upload) {
		t.Fatalf("/echo of %d bytes: %d came back, %v", len(upload), len(body), err)
	}

	req, _ = http.NewRequest(http.MethodGet, "http://pod/", nil)
	_, err := roundTrip(t, d, pod, 9999, req)
	var remote *forward.RemoteError
	if !errors.As(err, &remote) || remote.Port != 9999 || !strings.Contains(remote.Error(), "9999") {
		t.Fatalf("direct stream to an unserved port: %v, want a RemoteError for port 9999", err)
	}
}

// Through the proxy: a pod's first connection goes direct and leaves
// nothing open; its next one, soon after, gets a tunnel.
func TestProxyDirectThenTunnel(t *testing.T) {
	c := clustertest.Shared(t)
	f, d, pod := proxyToNewPod(t, c, "direct-proxy", forward.ProxyOptions{}, func(p *forward.Pool, d *forward.Dialer) { p.UseDirect(d) })
	if !d.Direct() {
		t.Fatal("direct connections are off by default")
	}
	want := "pod=direct-proxy/" + pod.Name + " port=8080\n"

	if body, err := fresh(t, f.addr, http.MethodGet, "/", nil); err != nil || body != want {
		t.Fatalf("first connection: %q, %v", body, err)
	}
	if f.pool.Directs.Load() != 1 || f.pool.Len() != 0 || f.pool.Dials.Load() != 0 {
		t.Errorf("after the first connection: %d direct, %d tunnels open, %d dialed; want 1, 0, 0", f.pool.Directs.Load(), f.pool.Len(), f.pool.Dials.Load())
	}
	for range 3 {
		if body, err := fresh(t, f.addr, http.MethodGet, "/", nil); err != nil || body != want {
			t.Fatalf("next connection: %q, %v", body, err)
		}
	}
	if f.pool.Directs.Load() != 1 || f.pool.Len() != 1 || f.pool.Dials.Load() != 1 {
		t.Errorf("after three more: %d direct, %d tunnels open, %d dialed; want 1, 1, 1", f.pool.Directs.Load(), f.pool.Len(), f.pool.Dials.Load())
	}

	// With WebSockets off (kubectl's switch), nothing goes direct.
	t.Setenv(forward.WebSocketsEnv, "false")
	spdy := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	if spdy.Direct() {
		t.Errorf("%s=false leaves direct connections on", forward.WebSocketsEnv)
	}
}

// refusingProxy stands in front of the API server like a proxy that passes
// SPDY and kubectl's SPDY-over-WebSocket but refuses other WebSocket
// upgrades, and returns a client configuration that goes through it.
func refusingProxy(t *testing.T, c *cluster.Cluster) (*rest.Config, *atomic.Int64) {
	t.Helper()
	upstream, err := url.Parse(c.RESTConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Transport = transport
	refusals := &atomic.Int64{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && strings.Contains(r.Header.Get("Sec-WebSocket-Protocol"), "v4.channel.k8s.io") {
			refusals.Add(1)
			http.Error(w, "this proxy does not pass that WebSocket protocol", http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, refusals
}

// A server that refuses the direct protocol is asked once; every
// connection, that one included, goes on a tunnel.
func TestProxyDirectRefusedFallsBackToTunnels(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "direct-refused", "web", 2)
	cfg, refusals := refusingProxy(t, c)
	d := newDialer(t, cfg, forward.DialerOptions{})
	f := startProxy(t, d, forward.ProxyOptions{}, func(p *forward.Pool) { p.UseDirect(d) })
	f.eps.Set([]forward.Endpoint{
		{Pod: forward.Pod{Namespace: "direct-refused", Name: pods[0]}, Port: 8080},
		{Pod: forward.Pod{Namespace: "direct-refused", Name: pods[1]}, Port: 8080},
	})
	for i := range 4 {
		if body, err := fresh(t, f.addr, http.MethodGet, "/", nil); err != nil || !strings.HasPrefix(body, "pod=direct-refused/") {
			t.Fatalf("connection %d: %q, %v", i, body, err)
		}
	}
	if refusals.Load() != 1 || f.pool.Len() != 2 {
		t.Errorf("the proxy refused %d direct connections (want 1: not asked again), %d tunnels open (want 2)", refusals.Load(), f.pool.Len())
	}
}
