package forward_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// poolFor is a running pool dialing the devcluster, closing tunnels idle
// for longer than idle.
func poolFor(t *testing.T, c *cluster.Cluster, idle time.Duration) *forward.Pool {
	t.Helper()
	d := newDialer(t, c.RESTConfig, forward.DialerOptions{})
	p := forward.NewPool(d, idle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func closedWithin(tun *forward.Tunnel, d time.Duration) bool {
	select {
	case <-tun.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// Retire (a refresh) takes a tunnel out of use at once, keeps it for the
// stream it carries, and closes it when that stream ends; an idle one is
// closed at once.
func TestPoolRetireDrains(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "poolretire", "web", 2)
	p := poolFor(t, c, time.Hour)
	busyPod, idlePod := forward.Pod{Namespace: "poolretire", Name: pods[0]}, forward.Pod{Namespace: "poolretire", Name: pods[1]}
	busy, err := p.Get(t.Context(), busyPod)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := p.Get(t.Context(), idlePod)
	if err != nil {
		t.Fatal(err)
	}
	s, err := busy.Open(t.Context(), 8080)
	if err != nil {
		t.Fatal(err)
	}

	p.Retire(nil, time.Hour)
	if !closedWithin(idle, 5*time.Second) {
		t.Error("a retired tunnel without streams stayed open")
	}
	if closedWithin(busy, 500*time.Millisecond) {
		t.Fatal("a retired tunnel was closed under the stream it carried")
	}
	if n := p.Retiring.Load(); n != 1 {
		t.Errorf("Retiring = %d, want 1 (the busy tunnel)", n)
	}
	fresh, err := p.Get(t.Context(), busyPod)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == busy {
		t.Fatal("after Retire, Get returned the retired tunnel")
	}
	// The stream still works on the old tunnel, then ends: the tunnel goes.
	if body, err := getOn(t, s); err != nil || body == "" {
		t.Errorf("the stream on the retired tunnel: %q, %v", body, err)
	}
	if !closedWithin(busy, 5*time.Second) {
		t.Error("the retired tunnel stayed open after its last stream ended")
	}
	if err := cluster.Poll(t.Context(), 5*time.Second, func(context.Context) (bool, error) { return p.Retiring.Load() == 0, nil }); err != nil {
		t.Errorf("Retiring = %d after the drain", p.Retiring.Load())
	}
}

// A retired tunnel whose stream never ends (a wedged connection) is closed
// when its grace is over, freeing the stream.
func TestPoolRetireGrace(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "poolgrace", "web", 1)
	p := poolFor(t, c, time.Hour)
	tun, err := p.Get(t.Context(), forward.Pod{Namespace: "poolgrace", Name: pods[0]})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tun.Open(t.Context(), 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const grace = time.Second
	p.Retire(nil, grace)
	if closedWithin(tun, grace/2) {
		t.Fatal("closed before its grace")
	}
	if !closedWithin(tun, 10*time.Second) {
		t.Fatal("a retired tunnel with a stuck stream outlived its grace")
	}
}

// A retired tunnel whose stream keeps moving data (a long download) is not
// cut when its grace is over: grace counts silence, not age. Once the
// stream falls silent, the tunnel closes a grace later.
func TestPoolRetireKeepsBusyStream(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "poolbusy", "web", 1)
	p := poolFor(t, c, time.Hour)
	tun, err := p.Get(t.Context(), forward.Pod{Namespace: "poolbusy", Name: pods[0]})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tun.Open(t.Context(), 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const size = 1 << 30 // far more than is read: the download outlives the test
	if _, err := fmt.Fprintf(s, "GET /bytes?n=%d HTTP/1.1\r\nHost: pool\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	const grace = 500 * time.Millisecond
	retired := time.Now()
	p.Retire(nil, grace)
	// Read slowly, a little every 100 ms, for 4 graces.
	buf := make([]byte, 4096)
	for end := time.Now().Add(4 * grace); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := s.Read(buf); err != nil {
			t.Fatalf("the busy stream was cut %s after its tunnel was retired: %v", time.Since(retired).Round(time.Millisecond), err)
		}
	}
	// Silent from now on (the pod's sends stall once buffers fill).
	if !closedWithin(tun, 20*time.Second) {
		t.Fatal("a retired tunnel whose stream fell silent outlived its grace")
	}
}

// The idle reaper closes a tunnel without streams once it has been idle
// for the pool's idle time, and leaves one carrying a stream alone.
func TestPoolClosesIdleTunnels(t *testing.T) {
	c := clustertest.Shared(t)
	pods := app(t, c, "poolidle", "web", 2)
	const idleTime = time.Second
	p := poolFor(t, c, idleTime)
	idle, err := p.Get(t.Context(), forward.Pod{Namespace: "poolidle", Name: pods[0]})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := p.Get(t.Context(), forward.Pod{Namespace: "poolidle", Name: pods[1]})
	if err != nil {
		t.Fatal(err)
	}
	s, err := busy.Open(t.Context(), 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !closedWithin(idle, 10*time.Second) {
		t.Fatal("an idle tunnel was not closed")
	}
	if closedWithin(busy, 3*idleTime) {
		t.Fatal("a tunnel carrying a stream was closed as idle")
	}
	if n := p.Len(); n != 1 {
		t.Errorf("Len = %d, want 1 (the busy tunnel)", n)
	}
}

// getOn sends one request on s, reads the answer and closes s.
func getOn(t *testing.T, s *forward.Stream) (string, error) {
	t.Helper()
	defer s.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://pod/", nil)
	req.Close = true
	if err := req.Write(s); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(s), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
