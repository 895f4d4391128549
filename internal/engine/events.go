package engine

import (
	"slices"
	"sync"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Subscription receives events until it is closed or falls behind.
type Subscription struct {
	hub     *hub
	ch      chan api.Event
	recent  []api.Event // emitted before it began, oldest first
	dropped bool        // guarded by hub.mu
}

// Recent returns the events emitted before the subscription began (at most
// recentKept), oldest first: with Events, a history without gap or repeat.
func (s *Subscription) Recent() []api.Event { return s.recent }

// Events is closed when the subscription ends.
func (s *Subscription) Events() <-chan api.Event { return s.ch }

// Close stops the subscription.
func (s *Subscription) Close() { s.hub.unsubscribe(s, false) }

// Dropped says whether the subscription ended because its reader was too
// slow (C is then closed).
func (s *Subscription) Dropped() bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.dropped
}

// hub fans events out. Forwarding never waits for a reader: a subscriber
// whose buffer is full is dropped, and learns it from Dropped. It keeps the
// most recent events for those who arrive later (a live view, an
// assistant asking what just happened).
type hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	recent []api.Event // oldest first, at most recentKept; guarded by mu
}

const (
	subscriptionBuffer = 1024
	recentKept         = 500
)

func (h *hub) subscribe() *Subscription {
	s := &Subscription{hub: h, ch: make(chan api.Event, subscriptionBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.recent = slices.Clone(h.recent)
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) unsubscribe(s *Subscription, dropped bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	s.dropped = dropped
	close(s.ch)
}

func (h *hub) emit(ev api.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	h.mu.Lock()
	if len(h.recent) == recentKept {
		h.recent = slices.Delete(h.recent, 0, recentKept/10) // in steps, not one copy per event
	}
	h.recent = append(h.recent, ev)
	var slow []*Subscription
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			slow = append(slow, s)
		}
	}
	h.mu.Unlock()
	for _, s := range slow {
		h.unsubscribe(s, true)
	}
}

// Subscribe follows the instance's events from now on.
func (e *Engine) Subscribe() api.Subscription { return e.events.subscribe() }
