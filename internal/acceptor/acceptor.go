// Package acceptor accepts connections on many listeners at once.
//
// kubefwd keeps a listener open for every port of every Service it forwards:
// thousands on a large cluster, nearly all idle all day. A goroutine blocked
// in Accept on each costs its stack and its bookkeeping, about 2.5 KB each;
// at 3,000 Services that was an eighth of kubefwd's memory at rest. On Linux
// one goroutine waits on all of them with an epoll set of its own and
// accepts where a connection is pending. The standard library has no way to
// wait on many listeners from one goroutine, and no maintained library does
// only this, hence the small poller here. Elsewhere, and for listeners that
// expose no file descriptor, each listener gets its own accept loop.
package acceptor

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Handler takes over an accepted connection; it must not block (start a
// goroutine for the connection's work).
type Handler func(net.Conn)

// Acceptor serves listeners until they are closed. Its zero value is not
// usable; make one with New and end it with Close.
type Acceptor struct {
	poller *poller // nil where there is none

	mu     sync.Mutex
	closed bool                   // guarded by mu
	open   map[*listener]struct{} // guarded by mu
	loops  sync.WaitGroup         // accept loops of listeners the poller cannot watch
}

// New starts an Acceptor. Where the system's poller cannot be had, it falls
// back to an accept loop per listener rather than failing.
func New() *Acceptor {
	p, err := newPoller()
	if err != nil {
		p = nil
	}
	return &Acceptor{poller: p, open: map[*listener]struct{}{}}
}

// Serve hands every connection accepted on ln to handle, and every accept
// error to onError (which must return quickly), until the returned listener
// is closed. The Acceptor owns ln from then on: close the returned
// listener, not ln; its Accept fails, as only the Acceptor may take
// connections. It is an error after Close.
func (a *Acceptor) Serve(ln net.Listener, handle Handler, onError func(error)) (net.Listener, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("acceptor closed")
	}
	l := &listener{Listener: ln, a: a}
	if a.poller != nil {
		if stop, ok := a.poller.add(ln, handle, onError); ok {
			l.stop = stop
		}
	}
	if l.stop == nil {
		a.loops.Go(func() { acceptLoop(ln, handle, onError) })
	}
	a.open[l] = struct{}{}
	return l, nil
}

// Close closes every listener still served and returns once no handler can
// be called any more.
func (a *Acceptor) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	open := make([]*listener, 0, len(a.open))
	for l := range a.open {
		open = append(open, l)
	}
	a.mu.Unlock()
	for _, l := range open {
		l.Close()
	}
	if a.poller != nil {
		a.poller.close()
	}
	a.loops.Wait()
}

// listener is a served listener; closing it stops the serving.
type listener struct {
	net.Listener
	a    *Acceptor
	stop func() // the poller's deregistration; nil for an accept loop
	once sync.Once
}

func (l *listener) Close() error {
	l.once.Do(func() {
		l.a.mu.Lock()
		delete(l.a.open, l)
		l.a.mu.Unlock()
		if l.stop != nil {
			l.stop()
		}
	})
	return l.Listener.Close()
}

// Accept is not for callers: an Accept beside the Acceptor's would race it
// for connections.
func (l *listener) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: errors.New("served by an acceptor")}
}

// acceptLoop is one listener's own accept loop.
func acceptLoop(ln net.Listener, handle Handler, onError func(error)) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			onError(err)
			time.Sleep(retryAfter) // out of descriptors, most likely
			continue
		}
		handle(conn)
	}
}

// retryAfter is how long accepting pauses after an error other than the
// listener closing, so that running out of descriptors does not spin.
const retryAfter = 50 * time.Millisecond
