package relay

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrIdle is why Serve returned when no stream came for Server.IdleExit.
var ErrIdle = errors.New("relay: no client within the idle limit")

// Server is the relay's side: `kubefwd relay` runs one in the relay pod.
type Server struct {
	Log *slog.Logger
	// IdleExit ends Serve after this long without a stream open, so that a
	// relay whose kubefwd vanished does not live forever; 0 never does.
	IdleExit time.Duration
	// FlowIdle ends a UDP flow after this long without a datagram either
	// way (default 2 minutes).
	FlowIdle time.Duration
	// HeaderTimeout bounds the wait for a stream's header (default 10 s);
	// DialTimeout the dial of its target (default 10 s).
	HeaderTimeout, DialTimeout time.Duration
	// Dial dials targets (default: a net.Dialer).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func (s *Server) defaults() {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.FlowIdle <= 0 {
		s.FlowIdle = 2 * time.Minute
	}
	if s.HeaderTimeout <= 0 {
		s.HeaderTimeout = 10 * time.Second
	}
	if s.DialTimeout <= 0 {
		s.DialTimeout = 10 * time.Second
	}
	if s.Dial == nil {
		var d net.Dialer
		s.Dial = d.DialContext
	}
}

// Serve relays the streams accepted on ln until ctx ends (it returns nil)
// or no stream was open for IdleExit (ErrIdle). It closes ln and every
// stream before it returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.defaults()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()

	var streams sync.WaitGroup
	defer streams.Wait()
	idle := newIdleTimer(s.IdleExit, func() { cancel(ErrIdle) })
	defer idle.stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				if errors.Is(context.Cause(ctx), ErrIdle) {
					return ErrIdle
				}
				return nil
			}
			s.Log.Warn("accept failed", "err", err)
			time.Sleep(50 * time.Millisecond) // out of descriptors, most likely
			continue
		}
		streams.Go(func() { s.serveStream(ctx, c, idle) })
	}
}

// idleTimer fires when nothing has been busy for d.
type idleTimer struct {
	mu     sync.Mutex
	d      time.Duration
	active int
	t      *time.Timer // nil when d is 0
}

func newIdleTimer(d time.Duration, fire func()) *idleTimer {
	it := &idleTimer{d: d}
	if d > 0 {
		it.t = time.AfterFunc(d, fire)
	}
	return it
}

func (it *idleTimer) busy() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.active++; it.t != nil {
		it.t.Stop()
	}
}

func (it *idleTimer) done() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.active--; it.active == 0 && it.t != nil {
		it.t.Reset(it.d)
	}
}

func (it *idleTimer) stop() {
	if it.t != nil {
		it.t.Stop()
	}
}

// serveStream serves one stream. Only a stream that asks for something
// keeps the relay from idling out: a kubelet's TCP probe or a stray
// connection must not keep an abandoned relay alive.
func (s *Server) serveStream(ctx context.Context, c net.Conn, idle *idleTimer) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(s.HeaderTimeout))
	br := bufio.NewReader(c)
	req, err := ReadRequest(br)
	if err != nil {
		s.Log.Debug("refused a stream", "err", err)
		_ = writeReply(c, err)
		return
	}
	idle.busy()
	defer idle.done()
	_ = c.SetReadDeadline(time.Time{})
	if req == Ping {
		_ = writeReply(c, nil)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, s.DialTimeout)
	target, err := s.Dial(dctx, req.Network, req.Target)
	cancel()
	if err != nil {
		s.Log.Info("cannot reach target", "request", req.String(), "err", err)
		_ = writeReply(c, err)
		return
	}
	defer target.Close()
	if err := writeReply(c, nil); err != nil {
		return
	}
	// Whatever ends first, ctx or the stream, closes both.
	stop := context.AfterFunc(ctx, func() { c.Close(); target.Close() })
	defer stop()
	stream := &bufferedConn{Conn: c, r: br}
	s.Log.Debug("relaying", "request", req.String())
	if req.Network == "udp" {
		s.flow(stream, target)
		return
	}
	pipe(stream, target)
}

// pipe copies both ways, passing a half-close on, until both are done.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	one := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err == nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		// An error, or no half-close: the whole thing is over.
		a.Close()
		b.Close()
	}
	wg.Go(func() { one(a, b) })
	one(b, a)
	wg.Wait()
}

// flow carries datagrams between stream (framed) and target (a connected
// UDP socket) until either ends or FlowIdle passes without one.
func (s *Server) flow(stream, target net.Conn) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Go(func() { // stream → target
		defer target.Close()
		buf := make([]byte, MaxDatagram)
		for {
			n, err := ReadDatagram(stream, buf)
			if err != nil {
				return
			}
			last.Store(time.Now().UnixNano())
			if _, err := target.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
		}
	})
	defer wg.Wait()
	defer stream.Close()
	buf := make([]byte, MaxDatagram)
	for {
		_ = target.SetReadDeadline(time.Unix(0, last.Load()).Add(s.FlowIdle))
		n, err := target.Read(buf)
		if err != nil {
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				continue // an earlier datagram found no listener; the flow goes on
			case errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
				if time.Since(time.Unix(0, last.Load())) < s.FlowIdle {
					continue // the client sent meanwhile
				}
			}
			return
		}
		last.Store(time.Now().UnixNano())
		if err := WriteDatagram(stream, buf[:n]); err != nil {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bufferedConn reads through the reader that read the header, which may
// hold the first bytes after it.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
