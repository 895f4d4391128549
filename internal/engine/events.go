package engine

import (
	"sync"
	"time"
)

// Event types.
const (
	EventForward          = "forward"            // a forward appeared or changed state
	EventForwardRemoved   = "forward-removed"    // its Service is gone or no longer watched
	EventEndpointAdded    = "endpoint-added"     // a pod became ready for a forward
	EventEndpointRemoved  = "endpoint-removed"   // a pod went away or is not ready
	EventConnectionFailed = "connection-failed"  // a connection could not be carried
	EventWatchError       = "watch-error"        // listing or watching the API failed
	EventNamespaces       = "namespaces-changed" // the forwarded namespaces changed
	EventRefresh          = "refresh"            // tunnels were dropped on request or after sleep
)

// Event is one change, for tools following an instance.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Context   string    `json:"context,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Service   string    `json:"service,omitempty"`
	Pod       string    `json:"pod,omitempty"`
	State     string    `json:"state,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Address   string    `json:"address,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// Subscription receives events until it is closed or falls behind.
type Subscription struct {
	C <-chan Event

	hub     *hub
	ch      chan Event
	dropped bool // guarded by hub.mu
}

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
// whose buffer is full is dropped, and learns it from Dropped.
type hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

const subscriptionBuffer = 1024

func (h *hub) subscribe() *Subscription {
	ch := make(chan Event, subscriptionBuffer)
	s := &Subscription{C: ch, hub: h, ch: ch}
	h.mu.Lock()
	defer h.mu.Unlock()
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

func (h *hub) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	h.mu.Lock()
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
func (e *Engine) Subscribe() *Subscription { return e.events.subscribe() }
