package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// ErrTunnelClosed is returned for work on a tunnel that has been closed.
var ErrTunnelClosed = errors.New("tunnel closed")

// ErrTunnelSlow is returned by Open when the other side did not answer a
// new stream in time; the tunnel is left to the streams it carries and the
// caller should open the stream on another one. Two causes, both seen under
// everyday faults: a congested tunnel, whose answer waits behind other
// streams' data (SPDY has no per-stream flow control, and a client reading
// a download slower than the pod sends backs up the whole connection), and
// a dead one whose far end is gone while its connection still looks open
// (the kubelet restarted). The first is answered late and lives on for its
// streams; the second is closed once the caller's deadline passes with
// nothing moved on it.
var ErrTunnelSlow = errors.New("tunnel slow to answer")

// How long a new stream waits for its answer before the tunnel counts as
// slow: not long while other streams move data (the tunnel is alive, the
// answer is stuck behind them); longer on a silent tunnel, where it is the
// round trip to the kubelet itself that is late.
const (
	congestedAfter = time.Second
	silentAfter    = 3 * time.Second
)

// Tunnel is one port-forward connection to one pod. Any number of streams
// (one per forwarded TCP connection) share it; each is independent of the
// others: a stream that fails leaves its siblings alone.
type Tunnel struct {
	pod      Pod
	protocol string
	conn     streamhttp.Connection
	nextID   atomic.Uint64
	done     chan struct{}
	moved    atomic.Int64 // when a stream last moved a byte (unix ns)

	mu       sync.Mutex
	open     int       // streams not yet closed; guarded by mu
	lastUsed time.Time // when open last dropped to zero; guarded by mu
	closed   bool      // guarded by mu
}

func newTunnel(pod Pod, conn streamhttp.Connection, protocol string) *Tunnel {
	t := &Tunnel{pod: pod, protocol: protocol, conn: conn, done: make(chan struct{}), lastUsed: time.Now()}
	t.moved.Store(time.Now().UnixNano())
	go func() {
		<-conn.CloseChan()
		t.markClosed()
	}()
	return t
}

// Pod is the pod this tunnel reaches.
func (t *Tunnel) Pod() Pod { return t.pod }

// Protocol is ProtocolWebSocket or ProtocolSPDY.
func (t *Tunnel) Protocol() string { return t.protocol }

// Done is closed once the tunnel is closed, by us or by the other side.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Idle reports how long the tunnel has had no open stream (0 if it has one).
func (t *Tunnel) Idle() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open > 0 {
		return 0
	}
	return time.Since(t.lastUsed)
}

// Streams is the number of open streams.
func (t *Tunnel) Streams() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open
}

// closeTimeout bounds Close: closing writes a GOAWAY frame, which can block
// on a dead connection whose send buffer is full.
const closeTimeout = 2 * time.Second

// Close closes the tunnel and every stream on it. It returns within
// closeTimeout; a close still blocked then finishes in the background, when
// the connection's write fails.
func (t *Tunnel) Close() error {
	// Closed first: no new stream may start on a connection going away
	// (creating one would wait for a reply that never comes).
	t.markClosed()
	done := make(chan error, 1)
	go func() { done <- t.conn.Close() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(closeTimeout):
		err = fmt.Errorf("closing tunnel to pod %s: no progress within %s", t.pod, closeTimeout)
	}
	t.markClosed()
	return err
}

func (t *Tunnel) markClosed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
}

// Open starts a stream to port of the pod. Creating a stream waits for the
// other side to accept it. Without an answer within congestedAfter while
// other streams move data, or within silentAfter otherwise, Open returns
// ErrTunnelSlow and the tunnel stays open for its streams; if ctx ends
// first, a deadline means a dead tunnel: it is closed, so the caller can
// redial.
func (t *Tunnel) Open(ctx context.Context, port int32) (*Stream, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrTunnelClosed
	}
	t.open++
	t.mu.Unlock()

	s, err := t.openStreams(ctx, port)
	if err != nil {
		t.release()
		return nil, err
	}
	return s, nil
}

func (t *Tunnel) openStreams(ctx context.Context, port int32) (*Stream, error) {
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.FormatUint(t.nextID.Add(1), 10))
	errs, err := t.createStream(ctx, h)
	if err != nil {
		return nil, err
	}
	// We never write on the error stream: close our half at once.
	errs.Close()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := t.createStream(ctx, h)
	if err != nil {
		errs.Reset()
		t.conn.RemoveStreams(errs)
		return nil, err
	}
	s := &Stream{pod: t.pod, port: port, tunnel: t, c: &tunnelCarrier{t: t, data: data, errs: errs}, remote: make(chan struct{})}
	go s.readRemoteError(errs)
	return s, nil
}

func (t *Tunnel) createStream(ctx context.Context, h http.Header) (streamhttp.Stream, error) {
	done := make(chan createResult, 1)
	go func() {
		s, err := t.conn.CreateStream(h)
		done <- createResult{s, err}
	}()
	asked := time.Now()
	check := time.NewTicker(congestedAfter)
	defer check.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return nil, fmt.Errorf("stream to pod %s port %s: %w", t.pod, h.Get(corev1.PortHeader), r.err)
			}
			return r.s, nil
		case <-check.C:
			waited := time.Since(asked)
			moving := t.movedSince(asked)
			if !moving && waited < silentAfter {
				continue
			}
			t.abandon(ctx, asked, done)
			why := "nothing moving on the tunnel"
			if moving {
				why = "other streams moving data"
			}
			return nil, fmt.Errorf("stream to pod %s port %s: no answer within %s, %s: %w", t.pod, h.Get(corev1.PortHeader), waited.Round(100*time.Millisecond), why, ErrTunnelSlow)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// An unanswered stream until the deadline means a dead
				// connection: close it, which also ends CreateStream.
				t.Close()
				return nil, fmt.Errorf("stream to pod %s port %s: no answer (%w); tunnel closed", t.pod, h.Get(corev1.PortHeader), ctx.Err())
			}
			t.abandon(ctx, asked, done) // the caller went away; the tunnel is not to blame
			return nil, ctx.Err()
		}
	}
}

// abandon gives up waiting for a stream asked for at asked, and takes care
// of its answer in the background: a stream that comes after all is reset
// at once. If none has come by ctx's deadline and nothing moved on the
// tunnel since asked, the tunnel is dead and closed. It ends when
// CreateStream does (it has its own limit, 30 s) or the tunnel closes.
func (t *Tunnel) abandon(ctx context.Context, asked time.Time, done <-chan createResult) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = asked.Add(silentAfter)
	}
	go func() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case r := <-done:
			r.discard(t)
			return
		case <-timer.C:
		}
		if !t.movedSince(asked) {
			t.Close()
		}
		(<-done).discard(t)
	}()
}

type createResult struct {
	s   streamhttp.Stream
	err error
}

func (r createResult) discard(t *Tunnel) {
	if r.err == nil {
		r.s.Reset()
		t.conn.RemoveStreams(r.s)
	}
}

func (t *Tunnel) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open--
	if t.open == 0 {
		t.lastUsed = time.Now()
	}
}

// Quiet is how long no stream of the tunnel has moved a byte either way
// (since it was opened, if none has).
func (t *Tunnel) Quiet() time.Duration {
	return time.Since(time.Unix(0, t.moved.Load()))
}

// movedSince reports whether a stream moved data after when.
func (t *Tunnel) movedSince(when time.Time) bool { return t.moved.Load() > when.UnixNano() }

// touch notes that a stream moved data. One clock read and atomic store per
// read or write, which carry up to a buffer's worth each.
func (t *Tunnel) touch() { t.moved.Store(time.Now().UnixNano()) }

// Stream is one TCP connection to a pod's port: a stream pair on a tunnel,
// or a WebSocket of its own (see direct.go).
type Stream struct {
	pod       Pod
	port      int32
	tunnel    *Tunnel // nil for a direct stream
	c         carrier
	remote    chan struct{} // closed when the pod side's verdict is in
	remoteErr error         // what the other side reported; set before remote closes
	closeOnce sync.Once
	release   func() // if set, called once the stream is closed
}

// carrier moves a stream's bytes: over a tunnel or a WebSocket of its own.
type carrier interface {
	io.ReadWriter
	closeWrite() error
	close()
}

// tunnelCarrier is a stream pair on a tunnel: data, and the kubelet's
// verdict on the error stream.
type tunnelCarrier struct {
	t          *Tunnel
	data, errs streamhttp.Stream
}

func (c *tunnelCarrier) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if n > 0 {
		c.t.touch()
	}
	return n, err
}

func (c *tunnelCarrier) Write(p []byte) (int, error) {
	n, err := c.data.Write(p)
	if n > 0 {
		c.t.touch()
	}
	return n, err
}

func (c *tunnelCarrier) closeWrite() error { return c.data.Close() }

func (c *tunnelCarrier) close() {
	c.data.Reset()
	c.errs.Reset()
	c.t.conn.RemoveStreams(c.data, c.errs)
	c.t.release()
}

// readRemoteError waits for the pod side to report on the error stream. The
// kubelet writes there when it could not reach the port, then closes it.
func (s *Stream) readRemoteError(errs io.Reader) {
	defer close(s.remote)
	// A read error here is our own Close resetting the stream; only a
	// message from the other side is a verdict.
	msg, _ := io.ReadAll(io.LimitReader(errs, 64<<10))
	s.setRemote(msg)
}

// setRemote records what the pod side reported (nothing: no verdict).
func (s *Stream) setRemote(msg []byte) {
	if m := strings.TrimSpace(string(msg)); m != "" {
		s.remoteErr = &RemoteError{Pod: s.pod, Port: s.port, Message: m}
	}
}

// Read reads what the pod sent.
func (s *Stream) Read(p []byte) (int, error) { return s.c.Read(p) }

// Write sends to the pod. A write fails when the pod side has ended the
// stream; when the kubelet said why (a port nothing serves), that is the
// error, rather than the transport's "close sent".
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.c.Write(p)
	if err != nil {
		if remote := s.RemoteErr(remoteAfterWrite); remote != nil {
			return n, remote
		}
	}
	return n, err
}

// remoteAfterWrite is how long a failed write waits for the kubelet's
// verdict, which is read on its own (it is usually there already).
const remoteAfterWrite = 250 * time.Millisecond

// CloseWrite tells the pod that no more data will come (a TCP half-close),
// where the stream's protocol can say so.
func (s *Stream) CloseWrite() error { return s.c.closeWrite() }

// Close ends the stream in both directions and releases what carried it.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.c.close()
		if s.release != nil {
			s.release()
		}
	})
	return nil
}

// RemoteErr waits up to wait for the pod side's verdict on this stream and
// returns it: a *RemoteError when the port could not be reached, nil when
// the stream ended cleanly or nothing was reported in time.
func (s *Stream) RemoteErr(wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.remote:
		return s.remoteErr
	case <-t.C:
		return nil
	}
}

// RemoteError is the kubelet's report that it could not forward a stream.
type RemoteError struct {
	Pod     Pod
	Port    int32
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("pod %s port %d: %s", e.Pod, e.Port, e.Message)
}
