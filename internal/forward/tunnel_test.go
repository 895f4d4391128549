package forward_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// app creates a Deployment+Service of n pods with a port 8080 and returns
// the pod names once they answer.
func app(t *testing.T, c *cluster.Cluster, ns, name string, n int) []string {
	t.Helper()
	pods, err := c.CreateApp(t.Context(), ns, name, int32(n), 8080)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// get sends one HTTP/1.1 request on a fresh stream and returns the body.
func get(ctx context.Context, tun *forward.Tunnel, port int32, path string) (string, error) {
	s, err := tun.Open(ctx, port)
	if err != nil {
		return "", err
	}
	defer s.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://pod"+path, nil)
	req.Close = true
	if err := req.Write(s); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(s), req)
	if err != nil {
		if rerr := s.RemoteErr(2 * time.Second); rerr != nil {
			return "", rerr
		}
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// sameAnswers runs get n times at once and reports every error and every
// body other than want.
func sameAnswers(t *testing.T, n int, want string, get func() (string, error)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			body, err := get()
			if err == nil && body != want {
				err = fmt.Errorf("body %q, want %q", body, want)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func dial(t *testing.T, c *cluster.Cluster, pod forward.Pod, opts forward.DialerOptions) *forward.Tunnel {
	t.Helper()
	d := newDialer(t, c.RESTConfig, opts)
	tun, err := d.Dial(t.Context(), pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	return tun
}

// One tunnel carries many concurrent streams, over WebSocket by default.
func TestTunnelCarriesConcurrentStreams(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "tunnel", "web", 1)
	pod := forward.Pod{Namespace: "tunnel", Name: pods[0]}
	tun := dial(t, c, pod, forward.DialerOptions{})
	if tun.Protocol() != forward.ProtocolWebSocket {
		t.Errorf("protocol = %q, want %q", tun.Protocol(), forward.ProtocolWebSocket)
	}

	want := fmt.Sprintf("pod=tunnel/%s port=8080\n", pods[0])
	sameAnswers(t, 50, want, func() (string, error) { return get(t.Context(), tun, 8080, "/") })
	if n := tun.Streams(); n != 0 {
		t.Errorf("%d streams still open after all were closed", n)
	}

	// A large body arrives intact.
	body, err := get(t.Context(), tun, 8080, "/bytes?n=3000000")
	if err != nil || len(body) != 3000000 {
		t.Fatalf("/bytes: %d bytes, %v", len(body), err)
	}
}

// A stream to a port nothing serves fails with the kubelet's message, and
// the tunnel and its other streams carry on.
func TestFailedStreamLeavesSiblingsAlone(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "siblings", "web", 1)
	pod := forward.Pod{Namespace: "siblings", Name: pods[0]}
	tun := dial(t, c, pod, forward.DialerOptions{})

	// A long-lived stream in flight during the failure.
	long, err := tun.Open(t.Context(), 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()

	_, err = get(t.Context(), tun, 9999, "/")
	var remote *forward.RemoteError
	if !errors.As(err, &remote) || remote.Port != 9999 {
		t.Fatalf("stream to an unserved port: err = %v, want a RemoteError for port 9999", err)
	}
	select {
	case <-tun.Done():
		t.Fatal("the tunnel closed after one stream failed")
	default:
	}

	// The long stream still works, and so do new ones.
	if _, err := io.WriteString(long, "GET / HTTP/1.1\r\nHost: pod\r\n\r\n"); err != nil {
		t.Fatalf("write on sibling stream: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(long), nil)
	if err != nil {
		t.Fatalf("sibling stream after a failure: %v", err)
	}
	resp.Body.Close()
	if body, err := get(t.Context(), tun, 8080, "/"); err != nil || !strings.HasPrefix(body, "pod=siblings/") {
		t.Fatalf("new stream after a failure: %q, %v", body, err)
	}
}

// KUBECTL_PORT_FORWARD_WEBSOCKETS=false selects SPDY, as in kubectl.
func TestWebSocketsDisabledByEnvironment(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "spdy-env", "web", 1)
	t.Setenv(forward.WebSocketsEnv, "false")
	tun := dial(t, c, forward.Pod{Namespace: "spdy-env", Name: pods[0]}, forward.DialerOptions{})
	if tun.Protocol() != forward.ProtocolSPDY {
		t.Errorf("protocol = %q, want %q", tun.Protocol(), forward.ProtocolSPDY)
	}
	if body, err := get(t.Context(), tun, 8080, "/"); err != nil || !strings.HasPrefix(body, "pod=spdy-env/") {
		t.Fatalf("GET over SPDY: %q, %v", body, err)
	}
}

// An apiserver without WebSocket port-forwarding makes the dialer fall back
// to SPDY, invisibly.
func TestFallbackToSPDY(t *testing.T) {
	c := clustertest.New(t, "kube-apiserver=feature-gates=PortForwardWebsockets=false")
	pods := app(t, c, "fallback", "web", 1)
	tun := dial(t, c, forward.Pod{Namespace: "fallback", Name: pods[0]}, forward.DialerOptions{})
	if tun.Protocol() != forward.ProtocolSPDY {
		t.Errorf("protocol = %q, want %q after fallback", tun.Protocol(), forward.ProtocolSPDY)
	}
	if body, err := get(t.Context(), tun, 8080, "/"); err != nil || !strings.HasPrefix(body, "pod=fallback/") {
		t.Fatalf("GET after fallback: %q, %v", body, err)
	}
}

// Dialing a pod that does not exist fails with a clear error, in time.
func TestDialMissingPod(t *testing.T) {
	c := clustertest.Shared(t)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{Timeout: 10 * time.Second})
	tun, err := d.Dial(t.Context(), forward.Pod{Namespace: "default", Name: "no-such-pod"})
	if err == nil {
		// Some servers accept the upgrade and fail the first stream instead.
		defer tun.Close()
		_, err = get(t.Context(), tun, 8080, "/")
	}
	if err == nil || !strings.Contains(err.Error(), "no-such-pod") {
		t.Fatalf("err = %v, want one naming the pod", err)
	}
}

// One Dialer dialing many pods at once over SPDY gives each tunnel its own
// pod's connection (client-go's SPDY round tripper keeps the connection of
// its last round trip, so a shared one crosses them).
func TestConcurrentSPDYDials(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "spdy-many", "web", 6)
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{DisableWebSockets: true})
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, len(pods))
		for _, name := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tun, err := d.Dial(t.Context(), forward.Pod{Namespace: "spdy-many", Name: name})
				if err != nil {
					errs <- err
					return
				}
				defer tun.Close()
				body, err := get(t.Context(), tun, 8080, "/")
				if err != nil || !strings.HasPrefix(body, "pod=spdy-many/"+name+" ") {
					errs <- fmt.Errorf("round %d: tunnel to %s answered %q, %v", round, name, body, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
