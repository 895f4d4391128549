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

// ErrTunnelCongested is returned by Open when the tunnel is alive but the
// answer to a new stream is stuck behind other streams' data: SPDY has no
// per-stream flow control, and a client reading a download slower than the
// pod sends it backs up the whole connection. The tunnel is left to the
// streams it carries; the caller should open the stream on another one.
var ErrTunnelCongested = errors.New("tunnel congested")

// congestedAfter is how long a new stream may wait for its answer while
// the tunnel's other streams move data before the tunnel counts as
// congested. Without data moving, an unanswered stream waits for the
// caller's deadline and then the tunnel counts as dead.
const congestedAfter = time.Second

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
// other side to accept it; if that does not happen before ctx ends, the
// tunnel is presumed dead and closed, so the caller can redial. If it does
// not happen within congestedAfter while other streams are moving data,
// Open returns ErrTunnelCongested at once and the tunnel stays open.
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
	s := &Stream{tunnel: t, port: port, data: data, errs: errs, remote: make(chan struct{})}
	go s.readRemoteError()
	return s, nil
}

func (t *Tunnel) createStream(ctx context.Context, h http.Header) (streamhttp.Stream, error) {
	type result struct {
		s   streamhttp.Stream
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := t.conn.CreateStream(h)
		done <- result{s, err}
	}()
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
			if t.Quiet() >= congestedAfter {
				continue // nothing moves at all: maybe dead, wait for ctx
			}
			// The answer may still come, once the backlog ahead of it is
			// read; the stream it opens is then thrown away. The goroutine
			// ends then, or when the tunnel closes.
			go func() {
				if r := <-done; r.err == nil {
					r.s.Reset()
					t.conn.RemoveStreams(r.s)
				}
			}()
			return nil, fmt.Errorf("stream to pod %s port %s: no answer within %s while other streams move data: %w", t.pod, h.Get(corev1.PortHeader), congestedAfter, ErrTunnelCongested)
		case <-ctx.Done():
			// An unanswered stream on a silent connection means a dead
			// one: close it, which also ends the CreateStream above.
			t.Close()
			return nil, fmt.Errorf("stream to pod %s port %s: no answer (%w); tunnel closed", t.pod, h.Get(corev1.PortHeader), ctx.Err())
		}
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

// touch notes that a stream moved data. One clock read and atomic store per
// read or write, which carry up to a buffer's worth each.
func (t *Tunnel) touch() { t.moved.Store(time.Now().UnixNano()) }

// Stream is one TCP connection to a pod's port, carried on a tunnel.
type Stream struct {
	tunnel     *Tunnel
	port       int32
	data, errs streamhttp.Stream
	remote     chan struct{} // closed when the error stream ends
	remoteErr  error         // what the other side reported; set before remote closes
	closeOnce  sync.Once
}

// readRemoteError waits for the pod side to report on the error stream. The
// kubelet writes there when it could not reach the port, then closes it.
func (s *Stream) readRemoteError() {
	defer close(s.remote)
	// A read error here is our own Close resetting the stream; only a
	// message from the other side is a verdict.
	msg, _ := io.ReadAll(io.LimitReader(s.errs, 64<<10))
	if m := strings.TrimSpace(string(msg)); m != "" {
		s.remoteErr = &RemoteError{Pod: s.tunnel.pod, Port: s.port, Message: m}
	}
}

// Read reads what the pod sent.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.data.Read(p)
	if n > 0 {
		s.tunnel.touch()
	}
	return n, err
}

// Write sends to the pod.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.data.Write(p)
	if n > 0 {
		s.tunnel.touch()
	}
	return n, err
}

// CloseWrite tells the pod that no more data will come (a TCP half-close).
func (s *Stream) CloseWrite() error { return s.data.Close() }

// Close ends the stream in both directions and releases it from its tunnel.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.data.Reset()
		s.errs.Reset()
		s.tunnel.conn.RemoveStreams(s.data, s.errs)
		s.tunnel.release()
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
