package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubefwd/kubefwd/internal/relay"
)

// Endpoint is one place a connection can go: a pod and its port, or,
// through a relay pod (Pod and Port are the relay's), the Target the relay
// dials for it.
type Endpoint struct {
	Pod    Pod
	Port   int32
	Target string // host:port the relay dials; "" for a direct endpoint
}

func (e Endpoint) String() string {
	if e.Target != "" {
		return fmt.Sprintf("%s via relay %s", e.Target, e.Pod)
	}
	return fmt.Sprintf("%s:%d", e.Pod, e.Port)
}

// Picker chooses the endpoint for a new connection.
type Picker interface {
	// Pick returns a ready endpoint, preferring ones not in tried. When none
	// is ready it waits until one is or ctx ends.
	Pick(ctx context.Context, tried []Endpoint) (Endpoint, error)
	// Failed reports that a stream to ep failed before the pod answered,
	// so that the next connections try the others first for a while.
	Failed(ep Endpoint)
}

// Counters accumulate traffic; safe for concurrent use.
type Counters struct {
	BytesIn  atomic.Int64 // from pods to clients
	BytesOut atomic.Int64 // from clients to pods
	Active   atomic.Int64 // connections being served
	Failed   atomic.Int64 // connections closed without reaching a pod
	Retried  atomic.Int64 // streams retried on another endpoint before the first byte
	// StreamErrors counts streams that could not be opened or ended in an
	// error (retried or not).
	StreamErrors atomic.Int64
	// Trouble says whether the latest connections could reach a pod.
	Trouble Trouble
}

// ProxyOptions tune a Proxy; zero values pick the defaults.
type ProxyOptions struct {
	// WaitForEndpoint bounds how long a connection waits for a ready
	// endpoint before it is closed. Default 30s.
	WaitForEndpoint time.Duration
	// StreamTimeout bounds opening a stream on a tunnel. Default 10s.
	StreamTimeout time.Duration
	// Attempts is how many endpoints a connection tries before giving up,
	// as long as no byte has come back. Default 3.
	Attempts int
	// ReplayLimit is how much of what the client sent before the first byte
	// came back is kept to resend on a retry. Default 64 KiB.
	ReplayLimit int
	// SlowClient is how long a write to a client may block before the
	// client counts as slow and its stream's tunnel is left to it.
	// Default 250ms.
	SlowClient time.Duration
}

// Proxy carries accepted connections to pods through a Pool.
type Proxy struct {
	pool *Pool
	log  *slog.Logger
	opts ProxyOptions
	// bufs recycles the copy buffers, two per connection: allocating
	// 64 KB for each of many short connections kept the garbage collector
	// busy enough to show in new-connection latency.
	bufs sync.Pool // of *[copyBuffer]byte
}

const copyBuffer = 32 << 10

func (p *Proxy) buffer() *[copyBuffer]byte {
	if b, ok := p.bufs.Get().(*[copyBuffer]byte); ok {
		return b
	}
	return new([copyBuffer]byte)
}

// NewProxy returns a Proxy using pool.
func NewProxy(pool *Pool, log *slog.Logger, opts ProxyOptions) *Proxy {
	if opts.WaitForEndpoint <= 0 {
		opts.WaitForEndpoint = 30 * time.Second
	}
	if opts.StreamTimeout <= 0 {
		opts.StreamTimeout = 10 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.ReplayLimit <= 0 {
		opts.ReplayLimit = 64 << 10
	}
	if opts.SlowClient <= 0 {
		opts.SlowClient = 250 * time.Millisecond
	}
	return &Proxy{pool: pool, log: log, opts: opts}
}

// Serve carries client to an endpoint chosen by picker and back, and closes
// client when done. If a stream fails before the pod sent anything, it tries
// another endpoint, resending what the client had sent: the client never
// notices. When every endpoint refuses (a pod that just turned ready and is
// not listening yet, endpoints not yet updated after a rollout), it keeps
// trying with a growing pause until WaitForEndpoint has passed since the
// connection came in. name identifies the forward in logs. The error says
// why a connection could not be carried; nil when it was.
func (p *Proxy) Serve(ctx context.Context, client net.Conn, name string, picker Picker, c *Counters) error {
	defer client.Close()
	c.Active.Add(1)
	defer c.Active.Add(-1)

	deadline := time.Now().Add(p.opts.WaitForEndpoint)
	r := &replay{limit: p.opts.ReplayLimit}
	pause := 100 * time.Millisecond
	var lastErr error
	for round := 0; ; round++ {
		done, err := p.round(ctx, client, name, picker, c, r, deadline, round > 0)
		if done {
			c.Trouble.ok()
			return nil
		}
		lastErr = err
		if _, replayable := r.pending(); !replayable || r.wasAnswered() || errors.Is(err, errNoEndpoint) ||
			Forbidden(err) || ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			// A refusal by RBAC is not retried: the other endpoints are in
			// the same namespace, and the answer will not change in seconds.
			break
		}
		c.Trouble.failed(err, time.Now().Add(pause))
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
	if lastErr != nil && !errors.Is(lastErr, errNoEndpoint) && ctx.Err() == nil {
		c.Trouble.failed(lastErr, time.Time{})
	}
	c.Failed.Add(1)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if lastErr == nil {
		lastErr = errors.New("no endpoint could be reached")
	}
	p.log.Warn("connection closed without reaching a pod", "forward", name, "client", client.RemoteAddr().String(), "err", lastErr)
	return lastErr
}

// errNoEndpoint: no endpoint became ready before the deadline.
var errNoEndpoint = errors.New("no ready endpoint")

// round tries up to Attempts endpoints, each not tried before in this
// round. done means the connection was carried (or ended for good).
func (p *Proxy) round(ctx context.Context, client net.Conn, name string, picker Picker, c *Counters, r *replay, deadline time.Time, again bool) (done bool, lastErr error) {
	var tried []Endpoint
	for attempt := 0; attempt < p.opts.Attempts; attempt++ {
		if attempt > 0 || again {
			c.Retried.Add(1)
		}
		pickCtx, cancel := context.WithDeadline(ctx, deadline)
		ep, err := picker.Pick(pickCtx, tried)
		cancel()
		if err != nil {
			return false, fmt.Errorf("%w within %s", errNoEndpoint, p.opts.WaitForEndpoint)
		}
		if slices.Contains(tried, ep) {
			return false, lastErr // every endpoint failed in this round
		}
		tried = append(tried, ep)
		s, err := p.openTo(ctx, ep, "tcp")
		if err != nil {
			c.StreamErrors.Add(1)
			picker.Failed(ep)
			lastErr = err
			continue
		}
		retry, err := p.pipe(client, s, r, c)
		if err != nil {
			c.StreamErrors.Add(1)
		}
		if !retry {
			var remote *RemoteError
			if !r.wasAnswered() && errors.As(err, &remote) {
				picker.Failed(ep)
				return false, err // refused, and too much was sent to replay
			}
			// Carried, or the pod closed without a word: that is its answer.
			if err != nil {
				p.log.Debug("connection ended with an error", "forward", name, "endpoint", ep.String(), "err", err)
			}
			return true, nil
		}
		picker.Failed(ep)
		lastErr = err
		p.log.Debug("stream failed before the first byte; trying another endpoint", "forward", name, "endpoint", ep.String(), "err", err)
	}
	return false, lastErr
}

// openTo starts a stream to ep; through the relay when ep has a target,
// which it then asks the relay to dial (network "tcp" or "udp").
func (p *Proxy) openTo(ctx context.Context, ep Endpoint, network string) (*Stream, error) {
	s, err := p.open(ctx, ep)
	if err != nil || ep.Target == "" {
		return s, err
	}
	// The relay answers once it has dialled (bounded by its own dial
	// timeout); a relay that never answers must not hold the connection.
	stop := context.AfterFunc(ctx, func() { s.Close() })
	timer := time.AfterFunc(p.opts.StreamTimeout+relayDialTime, func() { s.Close() })
	err = relay.Ask(s, relay.Request{Network: network, Target: ep.Target})
	// Either may have closed the stream just as the answer came.
	inTime, notCancelled := timer.Stop(), stop()
	switch {
	case err != nil:
	case !notCancelled:
		err = ctx.Err()
	case !inTime:
		err = errors.New("the relay did not answer in time")
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	return s, nil
}

// AskRelay sends r (a ping) to the relay at pod:port on a stream of its
// own, and reads the answer.
func (p *Proxy) AskRelay(ctx context.Context, pod Pod, port int32, r relay.Request) error {
	s, err := p.open(ctx, Endpoint{Pod: pod, Port: port})
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	return relay.Ask(s, r)
}

// relayDialTime is the relay's own bound on dialling a target.
const relayDialTime = 10 * time.Second

// open starts a stream to ep, on a new tunnel once if the pooled one turns
// out to be closed or slow to answer (congested by a client that reads
// slower than its pod sends, or dead; it is left to the streams it carries).
func (p *Proxy) open(ctx context.Context, ep Endpoint) (*Stream, error) {
	s, ok, err := p.pool.Direct(ctx, ep.Pod, ep.Port)
	if ok {
		return s, err
	}
	if err != nil {
		p.log.Info("the API server does not take direct port-forward WebSockets: every connection goes on a tunnel", "err", err)
	}
	for range 2 {
		var t *Tunnel
		t, err = p.pool.Get(ctx, ep.Pod)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(ctx, p.opts.StreamTimeout)
		var s *Stream
		s, err = t.Open(sctx, ep.Port)
		cancel()
		switch {
		case errors.Is(err, ErrTunnelClosed):
			continue
		case errors.Is(err, ErrTunnelSlow):
			if p.pool.Detach(t) {
				p.log.Debug("a tunnel is slow to open streams: it is left to its streams, new ones get their own", "pod", ep.Pod.String(), "err", err)
			}
			continue
		}
		return s, err
	}
	return nil, err
}

// replay keeps what the client sent until the pod answers, so a failed
// stream can be retried elsewhere without the client knowing.
type replay struct {
	mu       sync.Mutex
	buf      []byte
	limit    int
	overflow bool
	answered bool // the pod sent a byte: no retry any more, stop recording
}

func (r *replay) record(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answered || r.overflow {
		return
	}
	if len(r.buf)+len(b) > r.limit {
		r.overflow, r.buf = true, nil
		return
	}
	r.buf = append(r.buf, b...)
}

func (r *replay) pending() (b []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf, !r.overflow
}

func (r *replay) wasAnswered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answered
}

func (r *replay) markAnswered() {
	r.mu.Lock()
	r.answered, r.buf = true, nil
	r.mu.Unlock()
}

// pipe copies between client and s until both directions are done. It
// reports retry=true when the stream failed before the pod sent a byte and
// what the client sent is still replayable; client is then left open.
func (p *Proxy) pipe(client net.Conn, s *Stream, r *replay, c *Counters) (retry bool, err error) {
	if b, _ := r.pending(); len(b) > 0 {
		if _, err := s.Write(b); err != nil {
			s.Close()
			_, ok := r.pending()
			return ok, err
		}
	}

	upDone := make(chan error, 1)
	go func() { upDone <- p.upstream(client, s, r, c) }()

	// Every return below has waited for upstream; nothing holds buf after.
	b := p.buffer()
	defer p.bufs.Put(b)
	buf := b[:]
	n, rerr := s.Read(buf)
	if n == 0 {
		// Nothing came back. If the kubelet reports a failure, try elsewhere.
		remote := s.RemoteErr(time.Second)
		if remote == nil && rerr == nil {
			rerr = io.ErrNoProgress
		}
		_ = client.SetReadDeadline(time.Now()) // stop upstream without losing bytes
		<-upDone
		_ = client.SetReadDeadline(time.Time{})
		s.Close()
		if remote != nil {
			_, ok := r.pending()
			return ok, remote
		}
		return false, rerr // the pod closed without a word: pass that on
	}
	r.markAnswered()
	c.Trouble.ok() // now, not when the connection ends: it may last hours
	down := p.watchSlowClient(client, s, &c.BytesIn)
	defer down.stop()
	var downErr error
	if _, werr := down.Write(buf[:n]); werr == nil {
		// Count as it flows, so status shows long transfers as they go.
		_, downErr = io.CopyBuffer(down, s, buf)
	} else {
		downErr = werr
	}
	// The pod is done sending: tell the client, then wait for its side.
	if downErr == nil {
		closeWrite(client)
	} else {
		client.Close()
	}
	upErr := <-upDone
	s.Close()
	return false, errors.Join(downErr, upErr)
}

// upstream copies client → pod, recording for replay until the pod answers.
func (p *Proxy) upstream(client net.Conn, s *Stream, r *replay, c *Counters) error {
	b := p.buffer()
	defer p.bufs.Put(b)
	buf := b[:]
	for {
		n, err := client.Read(buf)
		if n > 0 {
			r.record(buf[:n])
			if _, werr := s.Write(buf[:n]); werr != nil {
				return werr
			}
			c.BytesOut.Add(int64(n))
		}
		if errors.Is(err, io.EOF) {
			return s.CloseWrite()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil // pipe is switching endpoints
		}
		if err != nil {
			s.CloseWrite() // the client is gone: it sends nothing more
			return err
		}
	}
}

// downstream writes what the pod sent to the client, counting it, and
// notices a client that stops keeping up. SPDY (which port-forward speaks,
// also inside WebSockets) has no per-stream flow control: what the pod
// sends for a stream nobody reads waits in the tunnel's one connection,
// in front of every other stream's data and of the replies that open new
// streams. So the tunnel of a stream whose client blocks is taken out of
// use, and the pod's next connections get a tunnel of their own instead
// of waiting behind it. One timer per stream, reset around each write.
type downstream struct {
	w     io.Writer
	n     *atomic.Int64
	timer *time.Timer
	after time.Duration
}

func (p *Proxy) watchSlowClient(client io.Writer, s *Stream, n *atomic.Int64) *downstream {
	var once sync.Once
	t := time.AfterFunc(time.Hour, func() {
		once.Do(func() {
			if s.tunnel != nil && p.pool.Detach(s.tunnel) {
				p.log.Debug("a client is not keeping up: its tunnel is left to it, the pod's next connections get their own", "pod", s.tunnel.pod.String())
			}
		})
	})
	t.Stop()
	return &downstream{w: client, n: n, timer: t, after: p.opts.SlowClient}
}

func (d *downstream) Write(p []byte) (int, error) {
	d.timer.Reset(d.after)
	m, err := d.w.Write(p)
	d.timer.Stop()
	d.n.Add(int64(m))
	return m, err
}

func (d *downstream) stop() { d.timer.Stop() }

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
