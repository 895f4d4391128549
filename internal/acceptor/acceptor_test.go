package acceptor

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// served collects what an Acceptor hands over: each connection answers
// with its local address and is closed.
type served struct {
	mu    sync.Mutex
	conns int
	errs  []error
}

func (s *served) handle(c net.Conn) {
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	go func() {
		defer c.Close()
		io.WriteString(c, c.LocalAddr().String())
	}()
}

func (s *served) onError(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// ask connects to addr and returns what it answered.
func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// opaque hides a listener's descriptor, as a listener of another kind would.
type opaque struct{ net.Listener }

func TestServesManyListeners(t *testing.T) {
	a := New()
	var s served
	var lns []net.Listener
	for i := range 50 {
		var ln net.Listener = listen(t)
		if i%10 == 0 {
			ln = opaque{ln} // gets an accept loop of its own
		}
		l, err := a.Serve(ln, s.handle, s.onError)
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
	}
	// Every listener, twice, and many at once on one.
	for round := range 2 {
		for _, l := range lns {
			if got, err := ask(l.Addr().String()); err != nil || got != l.Addr().String() {
				t.Fatalf("round %d: %s answered %q, %v", round, l.Addr(), got, err)
			}
		}
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if got, err := ask(lns[1].Addr().String()); err != nil || got != lns[1].Addr().String() {
				t.Errorf("burst: %q, %v", got, err)
			}
		})
	}
	wg.Wait()

	// A closed listener is no longer served; the others are.
	closed := lns[3].Addr().String()
	if err := lns[3].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ask(closed); err == nil {
		t.Errorf("%s still answered after its listener closed", closed)
	}
	if got, err := ask(lns[4].Addr().String()); err != nil || got != lns[4].Addr().String() {
		t.Errorf("after another closed: %q, %v", got, err)
	}
	for _, l := range lns {
		l.Close()
	}
	a.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := 2*len(lns) + 100 + 1; s.conns != want {
		t.Errorf("handled %d connections, want %d", s.conns, want)
	}
	if len(s.errs) != 0 {
		t.Errorf("accept errors: %v", s.errs)
	}
	if _, err := a.Serve(listen(t), s.handle, s.onError); err == nil {
		t.Error("Serve after Close worked")
	}
}

// On Linux the listeners cost no goroutine each: that is the point.
func TestNoGoroutinePerListener(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux's; elsewhere each listener has an accept loop")
	}
	a := New()
	defer a.Close()
	var s served
	before := runtime.NumGoroutine()
	var lns []net.Listener
	for range 200 {
		l, err := a.Serve(listen(t), s.handle, s.onError)
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
	}
	if grew := runtime.NumGoroutine() - before; grew > 5 {
		t.Errorf("200 listeners started %d goroutines", grew)
	}
	for _, l := range lns {
		if got, err := ask(l.Addr().String()); err != nil || got != l.Addr().String() {
			t.Fatalf("%s answered %q, %v", l.Addr(), got, err)
		}
		l.Close()
	}
}

// After Close returns, no handler runs, even with connections pending.
func TestCloseStopsHandlers(t *testing.T) {
	a := New()
	var mu sync.Mutex
	closed := false
	var late int
	ln, err := a.Serve(listen(t), func(c net.Conn) {
		mu.Lock()
		if closed {
			late++
		}
		mu.Unlock()
		c.Close()
	}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var dialers sync.WaitGroup
	for range 4 {
		dialers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond); err == nil {
					c.Close()
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	a.Close()
	mu.Lock()
	closed = true
	mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	dialers.Wait()
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the listener was still open after Close")
	}
	if late != 0 {
		t.Errorf("%d handlers ran after Close returned", late)
	}
}

// The listener handed back refuses Accept: only the acceptor takes
// connections, or they would go to whoever asked first.
func TestAcceptIsTheAcceptors(t *testing.T) {
	a := New()
	defer a.Close()
	ln, err := a.Serve(listen(t), func(c net.Conn) { c.Close() }, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := ln.Accept(); err == nil || errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept = %v", err)
	}
}
