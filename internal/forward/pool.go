package forward

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// TunnelDialer opens tunnels; *Dialer is the real one.
type TunnelDialer interface {
	Dial(ctx context.Context, pod Pod) (*Tunnel, error)
}

// DirectDialer opens connections on WebSockets of their own (see
// ProtocolDirect); *Dialer is the real one.
type DirectDialer interface {
	DialDirect(ctx context.Context, pod Pod, port int32) (*Stream, error)
}

// DefaultIdleTimeout is how long a tunnel without streams stays open.
const DefaultIdleTimeout = 2 * time.Minute

// Pool keeps at most one tunnel per pod: opened on first use, shared by all
// streams to that pod, replaced when it breaks, closed when idle.
type Pool struct {
	dialer TunnelDialer
	idle   time.Duration

	// Dials and DialFailures count tunnel dials, Reconnects the tunnels
	// found broken and replaced; for metrics.
	Dials, DialFailures, Reconnects atomic.Int64
	// Retiring is the number of retired tunnels still open, carrying the
	// streams they had when a refresh took them out of use.
	Retiring atomic.Int64
	// Directs counts connections opened on WebSockets of their own.
	Directs atomic.Int64

	direct    DirectDialer // nil: every connection goes on a tunnel
	directOff atomic.Bool  // the server refused direct connections

	mu      sync.Mutex
	tunnels map[Pod]*poolEntry // guarded by mu
	recent  map[Pod]time.Time  // each pod's last connection; guarded by mu
	directs map[*Stream]bool   // direct streams open; guarded by mu

	retiring     sync.WaitGroup // drain goroutines
	shutdown     chan struct{}  // closed when Run ends
	shutdownOnce sync.Once
}

type poolEntry struct {
	ready chan struct{} // closed when the dial is done
	t     *Tunnel
	err   error
}

// NewPool returns a pool that dials with d and closes tunnels idle for
// longer than idle (DefaultIdleTimeout if zero).
func NewPool(d TunnelDialer, idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	return &Pool{dialer: d, idle: idle, tunnels: map[Pod]*poolEntry{}, recent: map[Pod]time.Time{}, directs: map[*Stream]bool{}, shutdown: make(chan struct{})}
}

// UseDirect lets Direct open connections with d. Call it before the pool is
// used.
func (p *Pool) UseDirect(d DirectDialer) { p.direct = d }

// Direct opens a connection to port of pod on a WebSocket of its own when
// the pod is not in use: it has no tunnel, and no other connection went to
// it within the idle timeout. Such a connection costs a fraction of a
// tunnel's memory and is closed with its client connection, so touching
// many Services once (a test suite, a browser tab over every dashboard)
// leaves nothing open. A pod connected to again within the idle timeout is
// in use: it gets a tunnel (faster to open streams on, and it carries
// half-closes), which then serves its connections until it idles out.
//
// ok is false when the connection should go on a tunnel: the pod is in
// use, direct connections are not enabled, or the server refused them
// (err then says why, the first time only; they are not tried again).
func (p *Pool) Direct(ctx context.Context, pod Pod, port int32) (s *Stream, ok bool, err error) {
	if p.direct == nil || p.directOff.Load() {
		return nil, false, nil
	}
	now := time.Now()
	p.mu.Lock()
	_, tunnel := p.tunnels[pod]
	last, seen := p.recent[pod]
	p.recent[pod] = now
	p.mu.Unlock()
	if tunnel || (seen && now.Sub(last) < p.idle) {
		return nil, false, nil
	}
	p.Directs.Add(1)
	s, err = p.direct.DialDirect(ctx, pod, port)
	if errors.Is(err, ErrDirectRefused) {
		if p.directOff.CompareAndSwap(false, true) {
			return nil, false, err
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	// Kept, so that the pool's shutdown closes it with the tunnels. release
	// is set before the stream is shared (CloseAll may close it at once).
	s.release = func() {
		p.mu.Lock()
		delete(p.directs, s)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.directs[s] = true
	p.mu.Unlock()
	return s, true, nil
}

// Get returns a live tunnel to pod, dialing one if needed. Concurrent callers
// for the same pod share one dial.
func (p *Pool) Get(ctx context.Context, pod Pod) (*Tunnel, error) {
	for {
		p.mu.Lock()
		e := p.tunnels[pod]
		if e == nil {
			e = &poolEntry{ready: make(chan struct{})}
			p.tunnels[pod] = e
			p.mu.Unlock()
			p.dial(ctx, pod, e)
			return e.t, e.err
		}
		p.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		select {
		case <-e.t.Done():
			if p.remove(pod, e) { // broken: forget it and dial anew
				p.Reconnects.Add(1)
			}
			continue
		default:
			return e.t, nil
		}
	}
}

// dial fills e. It does not use the caller's cancellation: other callers
// may be waiting on the same dial (the dialer has its own deadline).
func (p *Pool) dial(ctx context.Context, pod Pod, e *poolEntry) {
	p.Dials.Add(1)
	e.t, e.err = p.dialer.Dial(context.WithoutCancel(ctx), pod)
	close(e.ready)
	if e.err != nil {
		p.DialFailures.Add(1)
		p.remove(pod, e) // the next Get tries again
	}
}

// remove forgets e if it is still pod's tunnel, and says whether it was.
func (p *Pool) remove(pod Pod, e *poolEntry) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tunnels[pod] == e {
		delete(p.tunnels, pod)
		return true
	}
	return false
}

// Detach takes t out of use if it is still its pod's tunnel: the next
// connection to the pod dials a new one, and t stays for the streams it
// carries until they end, however long they are silent (a client that
// stopped reading is not a wedged tunnel). It reports whether t was
// detached (false: it was already out of use).
func (p *Pool) Detach(t *Tunnel) bool {
	p.mu.Lock()
	e := p.tunnels[t.pod]
	if e == nil || e.t != t {
		p.mu.Unlock()
		return false
	}
	delete(p.tunnels, t.pod)
	p.mu.Unlock()
	p.Retiring.Add(1)
	p.retiring.Go(func() {
		defer p.Retiring.Add(-1)
		p.drain(e, 0)
	})
	return true
}

// RetireGrace is how long a retired tunnel's streams may move nothing
// before the tunnel is closed under them.
const RetireGrace = 5 * time.Second

// Retire takes the tunnels of pods for which match returns true (all when
// match is nil) out of use: the next connection to such a pod dials a new
// tunnel, while streams already on the old one go on as long as they move
// data (a download, a busy database session) and until they end. A tunnel
// whose streams moved nothing for grace is closed under them: a wedged
// tunnel's streams are stuck, and that frees them. It is what a refresh
// does, so that connections in flight are not cut.
func (p *Pool) Retire(match func(Pod) bool, grace time.Duration) {
	p.retire(match, false, grace)
}

// RetireIdle takes every tunnel that is not being dialed out of use: those
// without streams are closed at once, those carrying streams are closed
// when their last stream ends, however long that takes. It is what a
// network change calls for: the next connection must not wait on a tunnel
// whose TCP connection may have died with the old network, and a
// connection that survived the change must not be cut by us. Dials in
// progress began on the new network and are left alone. It returns how
// many tunnels were closed at once and how many are left to their streams.
func (p *Pool) RetireIdle() (closed, draining int) {
	return p.retire(nil, true, 0)
}

// retire is Retire and RetireIdle; grace 0 means no deadline.
func (p *Pool) retire(match func(Pod) bool, skipDialing bool, grace time.Duration) (idle, busy int) {
	p.mu.Lock()
	var retired []*poolEntry
	for pod, e := range p.tunnels {
		if match != nil && !match(pod) {
			continue
		}
		select {
		case <-e.ready:
			if e.t != nil && e.t.Streams() > 0 {
				busy++
			} else {
				idle++
			}
		default:
			if skipDialing {
				continue
			}
			busy++
		}
		delete(p.tunnels, pod)
		retired = append(retired, e)
	}
	p.mu.Unlock()
	p.Retiring.Add(int64(len(retired)))
	for _, e := range retired {
		p.retiring.Go(func() {
			defer p.Retiring.Add(-1)
			p.drain(e, grace)
		})
	}
	return idle, busy
}

// drain closes e's tunnel once it carries no stream, once its streams
// moved nothing for grace (counted from the retirement at the earliest;
// never, if grace is 0), or at once when the pool shuts down.
func (p *Pool) drain(e *poolEntry, grace time.Duration) {
	<-e.ready
	if e.t == nil {
		return
	}
	retired := time.Now()
	every := 50 * time.Millisecond
	if grace > 0 {
		every = min(every, grace/4)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for e.t.Streams() > 0 {
		select {
		case <-tick.C:
			if grace > 0 && time.Since(retired) >= grace && e.t.Quiet() >= grace {
				e.t.Close()
				return
			}
		case <-e.t.Done():
			return
		case <-p.shutdown:
			e.t.Close()
			return
		}
	}
	e.t.Close()
}

// Retain closes the idle tunnels of pods for which keep returns false.
// Tunnels still carrying streams are left to finish; the idle reaper closes
// them later.
func (p *Pool) Retain(keep func(Pod) bool) {
	p.mu.Lock()
	var drop []*poolEntry
	for pod, e := range p.tunnels {
		busy := false
		select {
		case <-e.ready:
			busy = e.t != nil && e.t.Streams() > 0
		default:
			busy = true // being dialed for a connection right now
		}
		if !busy && !keep(pod) {
			delete(p.tunnels, pod)
			drop = append(drop, e)
		}
	}
	p.mu.Unlock()
	for _, e := range drop {
		closeEntry(e)
	}
}

// CloseAll closes every tunnel and direct stream.
func (p *Pool) CloseAll() {
	p.mu.Lock()
	entries := p.tunnels
	p.tunnels = map[Pod]*poolEntry{}
	directs := p.directs
	p.directs = map[*Stream]bool{}
	p.mu.Unlock()
	for _, e := range entries {
		closeEntry(e)
	}
	for s := range directs {
		s.Close()
	}
}

// Len is the number of tunnels open or being dialed.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tunnels)
}

func closeEntry(e *poolEntry) {
	if e == nil {
		return
	}
	// A dial in flight is closed when it completes.
	go func() {
		<-e.ready
		if e.t != nil {
			e.t.Close()
		}
	}()
}

// Run closes idle and broken tunnels until ctx ends, then closes them all.
func (p *Pool) Run(ctx context.Context) {
	tick := time.NewTicker(p.idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.shutdownOnce.Do(func() { close(p.shutdown) })
			p.CloseAll()
			p.retiring.Wait()
			return
		case <-tick.C:
			p.reap()
		}
	}
}

func (p *Pool) reap() {
	p.mu.Lock()
	for pod, last := range p.recent {
		if time.Since(last) >= p.idle {
			delete(p.recent, pod)
		}
	}
	var stale []*poolEntry
	for pod, e := range p.tunnels {
		select {
		case <-e.ready:
		default:
			continue // still dialing
		}
		if e.t == nil {
			continue
		}
		select {
		case <-e.t.Done():
		default:
			if e.t.Idle() < p.idle {
				continue
			}
		}
		delete(p.tunnels, pod)
		stale = append(stale, e)
	}
	p.mu.Unlock()
	for _, e := range stale {
		e.t.Close()
	}
}
