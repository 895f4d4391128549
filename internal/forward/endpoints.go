package forward

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Endpoints is the live set of ready endpoints of one Service port. It picks
// round-robin, or always the first (by pod name) when pinned, and lets
// pickers wait while the set is empty. An endpoint whose stream just failed
// (a dead process behind a ready endpoint, a pod going away) is tried after
// the others for FailCoolOff, so that not every connection pays for a
// failed try first. Safe for concurrent use.
type Endpoints struct {
	pin bool

	mu      sync.Mutex
	eps     []Endpoint             // sorted; guarded by mu
	next    int                    // round-robin cursor; guarded by mu
	failing map[Endpoint]time.Time // tried last until then; guarded by mu
	changed chan struct{}          // closed on every Set; guarded by mu
}

// FailCoolOff is how long an endpoint whose stream failed is tried last.
const FailCoolOff = 5 * time.Second

// NewEndpoints returns an empty set. With pinFirst, every connection goes to
// the first ready endpoint (upstream kubefwd's behaviour), failing over to
// the others only when it fails.
func NewEndpoints(pinFirst bool) *Endpoints {
	return &Endpoints{pin: pinFirst, changed: make(chan struct{}), failing: map[Endpoint]time.Time{}}
}

// Failed makes ep the last choice for FailCoolOff.
func (e *Endpoints) Failed(ep Endpoint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if slices.Contains(e.eps, ep) {
		e.failing[ep] = time.Now().Add(FailCoolOff)
	}
}

// Set replaces the ready endpoints.
func (e *Endpoints) Set(eps []Endpoint) {
	sorted := slices.Clone(eps)
	slices.SortFunc(sorted, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Pod.Namespace, b.Pod.Namespace), cmp.Compare(a.Pod.Name, b.Pod.Name), cmp.Compare(a.Port, b.Port))
	})
	sorted = slices.Compact(sorted)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.eps = sorted
	for ep := range e.failing {
		if !slices.Contains(sorted, ep) {
			delete(e.failing, ep)
		}
	}
	close(e.changed)
	e.changed = make(chan struct{})
}

// List returns the current endpoints.
func (e *Endpoints) List() []Endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.eps)
}

// Pick returns an endpoint not in tried if there is one, else any endpoint;
// with none at all it waits for Set or ctx.
func (e *Endpoints) Pick(ctx context.Context, tried []Endpoint) (Endpoint, error) {
	for {
		e.mu.Lock()
		if ep, ok := e.pickLocked(tried); ok {
			e.mu.Unlock()
			return ep, nil
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return Endpoint{}, ctx.Err()
		case <-changed:
		}
	}
}

func (e *Endpoints) pickLocked(tried []Endpoint) (Endpoint, bool) {
	n := len(e.eps)
	if n == 0 {
		return Endpoint{}, false
	}
	start := 0
	if !e.pin {
		start = e.next % n
		// Only a connection's first pick turns the wheel: were retries to
		// turn it too, a dead endpoint could come first for every
		// connection (pick it, fail, pick the next, and the wheel is back).
		if len(tried) == 0 {
			e.next = (e.next + 1) % n
		}
	}
	now := time.Now()
	// Not tried and not failing; then not tried; then anything (the pod
	// may be back).
	for _, usable := range []func(Endpoint) bool{
		func(ep Endpoint) bool { return !slices.Contains(tried, ep) && !now.Before(e.failing[ep]) },
		func(ep Endpoint) bool { return !slices.Contains(tried, ep) },
	} {
		for i := range n {
			if ep := e.eps[(start+i)%n]; usable(ep) {
				return ep, true
			}
		}
	}
	return e.eps[start], true
}
