package forward

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// Endpoints is the live set of ready endpoints of one Service port. It picks
// round-robin, or always the first (by pod name) when pinned, and lets
// pickers wait while the set is empty. Safe for concurrent use.
type Endpoints struct {
	pin bool

	mu      sync.Mutex
	eps     []Endpoint    // sorted; guarded by mu
	next    int           // round-robin cursor; guarded by mu
	changed chan struct{} // closed on every Set; guarded by mu
}

// NewEndpoints returns an empty set. With pinFirst, every connection goes to
// the first ready endpoint (upstream kubefwd's behaviour), failing over to
// the others only when it fails.
func NewEndpoints(pinFirst bool) *Endpoints {
	return &Endpoints{pin: pinFirst, changed: make(chan struct{})}
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
		e.next = (e.next + 1) % n
	}
	for i := range n {
		ep := e.eps[(start+i)%n]
		if !slices.Contains(tried, ep) {
			return ep, true
		}
	}
	// Everything was tried: try again rather than fail, the pod may be back.
	return e.eps[start], true
}
