package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// fakeConn is a connection whose streams carry nothing: enough for the
// pool's bookkeeping, which is what these tests are about. The real
// connections are tested against the devcluster in pool_test.go.
type fakeConn struct {
	mu      sync.Mutex
	closed  chan bool
	isClose bool
}

func newFakeConn() *fakeConn { return &fakeConn{closed: make(chan bool)} }

func (c *fakeConn) CreateStream(h http.Header) (streamhttp.Stream, error) {
	return &fakeStream{h: h, reset: make(chan struct{})}, nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.isClose {
		c.isClose = true
		close(c.closed)
	}
	return nil
}

func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isClose
}

func (c *fakeConn) CloseChan() <-chan bool             { return c.closed }
func (c *fakeConn) SetIdleTimeout(time.Duration)       {}
func (c *fakeConn) RemoveStreams(...streamhttp.Stream) {}

type fakeStream struct {
	h     http.Header
	once  sync.Once
	reset chan struct{}
}

func (s *fakeStream) Read([]byte) (int, error)    { <-s.reset; return 0, io.EOF }
func (s *fakeStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *fakeStream) Close() error                { return nil }
func (s *fakeStream) Reset() error                { s.once.Do(func() { close(s.reset) }); return nil }
func (s *fakeStream) Headers() http.Header        { return s.h }
func (s *fakeStream) Identifier() uint32          { return 0 }

type dialFunc func(ctx context.Context, pod Pod) (*Tunnel, error)

func (f dialFunc) Dial(ctx context.Context, pod Pod) (*Tunnel, error) { return f(ctx, pod) }

// With the default idle timeout, a tunnel without streams is closed two
// minutes after its last stream ended, not before; one carrying a stream
// is never closed for being idle.
func TestPoolDefaultIdleTimeout(t *testing.T) {
	// What the README promises, in its own words: not the constant, so that
	// changing the constant breaks this test.
	const promised = 2 * time.Minute
	synctest.Test(t, func(t *testing.T) {
		conns := map[string]*fakeConn{}
		p := NewPool(dialFunc(func(_ context.Context, pod Pod) (*Tunnel, error) {
			c := newFakeConn()
			conns[pod.Name] = c
			return newTunnel(pod, c, "fake"), nil
		}), 0)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()

		idle, err := p.Get(ctx, Pod{Namespace: "ns", Name: "idle"})
		if err != nil {
			t.Fatal(err)
		}
		busy, err := p.Get(ctx, Pod{Namespace: "ns", Name: "busy"})
		if err != nil {
			t.Fatal(err)
		}
		s, err := busy.Open(ctx, 80)
		if err != nil {
			t.Fatal(err)
		}

		time.Sleep(promised - time.Second)
		synctest.Wait()
		if conns["idle"].isClosed() {
			t.Fatalf("an idle tunnel was closed before %s", promised)
		}
		time.Sleep(promised/4 + time.Second) // the reaper's next look
		synctest.Wait()
		if !conns["idle"].isClosed() {
			t.Errorf("a tunnel idle for %s was not closed", promised+promised/4)
		}
		select {
		case <-idle.Done():
		default:
			t.Error("the closed tunnel does not say it is done")
		}
		if conns["busy"].isClosed() {
			t.Error("a tunnel carrying a stream was closed for being idle")
		}

		// Once its stream ends, the busy one has its own two minutes.
		s.Close()
		time.Sleep(promised - time.Second)
		synctest.Wait()
		if conns["busy"].isClosed() {
			t.Fatalf("a tunnel was closed less than %s after its last stream ended", promised)
		}
		time.Sleep(promised/4 + time.Second)
		synctest.Wait()
		if !conns["busy"].isClosed() {
			t.Error("a tunnel idle since its stream ended was not closed")
		}
		cancel()
		<-done
	})
}

// After a network change, RetireIdle closes idle tunnels at once, takes
// busy ones out of use without ever cutting their streams, and leaves a
// dial in progress alone.
func TestPoolRetireIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conns := map[string][]*fakeConn{}
		release := make(chan struct{})
		p := NewPool(dialFunc(func(_ context.Context, pod Pod) (*Tunnel, error) {
			if pod.Name == "dialing" {
				<-release
			}
			c := newFakeConn()
			conns[pod.Name] = append(conns[pod.Name], c)
			return newTunnel(pod, c, "fake"), nil
		}), time.Hour)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		pod := func(name string) Pod { return Pod{Namespace: "ns", Name: name} }

		if _, err := p.Get(ctx, pod("idle")); err != nil {
			t.Fatal(err)
		}
		busy, err := p.Get(ctx, pod("busy"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := busy.Open(ctx, 80)
		if err != nil {
			t.Fatal(err)
		}
		dialed := make(chan *Tunnel)
		go func() {
			tun, _ := p.Get(ctx, pod("dialing"))
			dialed <- tun
		}()
		synctest.Wait()

		if closed, draining := p.RetireIdle(); closed != 1 || draining != 1 {
			t.Errorf("RetireIdle = %d closed, %d draining; want 1 and 1", closed, draining)
		}
		synctest.Wait()
		if !conns["idle"][0].isClosed() {
			t.Error("an idle tunnel was not closed at once")
		}
		close(release)
		pending := <-dialed
		if again, _ := p.Get(ctx, pod("dialing")); again != pending || len(conns["dialing"]) != 1 {
			t.Error("a dial in progress was retired")
		}
		// The busy tunnel is out of use: a new connection gets a new one.
		if fresh, err := p.Get(ctx, pod("busy")); err != nil || fresh == busy {
			t.Errorf("after RetireIdle, Get(busy) = the old tunnel or %v", err)
		}
		// Its stream is never cut, not even after RetireGrace, an hour.
		time.Sleep(time.Hour)
		synctest.Wait()
		if conns["busy"][0].isClosed() {
			t.Fatal("a tunnel carrying a stream was closed under it")
		}
		s.Close()
		time.Sleep(time.Second)
		synctest.Wait()
		if !conns["busy"][0].isClosed() {
			t.Error("the retired tunnel stayed open after its last stream ended")
		}
		if n := p.Retiring.Load(); n != 0 {
			t.Errorf("Retiring = %d after the drain", n)
		}
		cancel()
		<-done
	})
}

// directFunc opens fake direct streams.
type directFunc func(ctx context.Context, pod Pod, port int32) (*Stream, error)

func (f directFunc) DialDirect(ctx context.Context, pod Pod, port int32) (*Stream, error) {
	return f(ctx, pod, port)
}

type nopCarrier struct{}

func (nopCarrier) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopCarrier) Write(p []byte) (int, error) { return len(p), nil }
func (nopCarrier) closeWrite() error           { return nil }
func (nopCarrier) close()                      {}

// A pod not in use gets a direct connection; a second connection within
// the idle timeout, or any while it has a tunnel, goes on a tunnel; once
// the tunnel has idled out, the pod is not in use any more.
func TestPoolDirectPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dials, directs := map[string]int{}, map[string]int{}
		p := NewPool(dialFunc(func(_ context.Context, pod Pod) (*Tunnel, error) {
			dials[pod.Name]++
			return newTunnel(pod, newFakeConn(), "fake"), nil
		}), 0)
		p.UseDirect(directFunc(func(_ context.Context, pod Pod, port int32) (*Stream, error) {
			directs[pod.Name]++
			return &Stream{pod: pod, port: port, c: nopCarrier{}, remote: make(chan struct{})}, nil
		}))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		a, b := Pod{Namespace: "ns", Name: "a"}, Pod{Namespace: "ns", Name: "b"}

		direct := func(pod Pod) bool {
			t.Helper()
			s, ok, err := p.Direct(ctx, pod, 80)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				s.Close()
			}
			return ok
		}
		if !direct(a) {
			t.Fatal("the first connection to a pod did not go direct")
		}
		time.Sleep(time.Minute)
		if direct(a) {
			t.Fatal("a second connection within the idle timeout went direct")
		}
		if _, err := p.Get(ctx, a); err != nil { // what the proxy does then
			t.Fatal(err)
		}
		if direct(a) {
			t.Error("a connection to a pod with a tunnel went direct")
		}
		if !direct(b) {
			t.Error("another pod's first connection did not go direct")
		}
		// The tunnel idles out (2 minutes, and the reaper's next look);
		// by then a's last connection is older than the idle timeout.
		time.Sleep(DefaultIdleTimeout + DefaultIdleTimeout/4 + time.Second)
		synctest.Wait()
		if p.Len() != 0 {
			t.Fatalf("%d tunnels open after the idle timeout", p.Len())
		}
		if !direct(a) {
			t.Error("a pod not used for longer than the idle timeout did not go direct")
		}
		if directs["a"] != 2 || directs["b"] != 1 || dials["a"] != 1 || p.Directs.Load() != 3 {
			t.Errorf("direct %v, tunnels dialed %v, counted %d", directs, dials, p.Directs.Load())
		}
		cancel()
		<-done
	})
}

// A server that refuses direct connections is told once, and never asked
// again: every connection goes on a tunnel.
func TestPoolDirectRefused(t *testing.T) {
	asked := 0
	p := NewPool(dialFunc(func(_ context.Context, pod Pod) (*Tunnel, error) {
		return newTunnel(pod, newFakeConn(), "fake"), nil
	}), 0)
	p.UseDirect(directFunc(func(context.Context, Pod, int32) (*Stream, error) {
		asked++
		return nil, fmt.Errorf("connection: %w: 400 Bad Request", ErrDirectRefused)
	}))
	s, ok, err := p.Direct(t.Context(), Pod{Namespace: "ns", Name: "a"}, 80)
	if ok || s != nil || !errors.Is(err, ErrDirectRefused) {
		t.Fatalf("first refusal: ok %v, err %v", ok, err)
	}
	s, ok, err = p.Direct(t.Context(), Pod{Namespace: "ns", Name: "b"}, 80)
	if ok || s != nil || err != nil || asked != 1 {
		t.Fatalf("after a refusal: ok %v, err %v, asked %d times", ok, err, asked)
	}
}
