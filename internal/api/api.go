// Package api is the language of kubefwd's control API: the status, events
// and namespace changes a running instance reports, as its clients (the
// CLI, the live view, the MCP server, scripts) read them. It imports only
// the standard library, so that a client links none of the engine; the
// engine fills these types.
package api

import (
	"cmp"
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Forward states.
const (
	StateActive       = "active"
	StateWaiting      = "waiting for endpoints"
	StateNotForwarded = "not forwarded"
	StatePaused       = "paused" // by the user (kubefwd pause), until kubefwd resume
	// Ready pods exist but the last connections could not reach one; the
	// reason says why, and "retrying in N s" while a connection waits.
	StateUnreachable = "unreachable"
	// The API server refused the port-forward (RBAC); the reason says
	// which permission, in which namespace.
	StateForbidden = "forbidden"
)

// Status is a snapshot of every forward.
type Status struct {
	Version    string              `json:"version,omitempty"`
	Started    time.Time           `json:"started"`
	Contexts   []string            `json:"contexts"`
	Namespaces []ContextNamespaces `json:"namespaces"`
	Forwards   []Forward           `json:"forwards"`
	Tunnels    []TunnelStats       `json:"tunnels"`
	API        []APIStats          `json:"api"`
	// HostsSkipped are the names the last hosts write left out, and why
	// (not valid there, the user's own entry, refused by the helper).
	HostsSkipped []SkippedName `json:"hostsSkipped,omitempty"`
	// HostsError is why the hosts file could not be written, while that
	// lasts (kubefwd retries; the names in it may be stale or missing).
	HostsError string `json:"hostsError,omitempty"`
	// Relays are the relay pods of svc --relay, one per context, once a
	// Service needs one.
	Relays []Relay `json:"relays,omitempty"`
}

// Relay is how one context's relay pod stands.
type Relay struct {
	Context   string `json:"context"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod,omitempty"`
	Ready     bool   `json:"ready"`
	// Reason says why it is not ready: starting, ended, or refused
	// ("cannot create the relay (forbidden …)").
	Reason string `json:"reason,omitempty"`
}

// SkippedName is a name left out of the hosts file, and why.
type SkippedName struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// TunnelStats counts one context's tunnel dials.
type TunnelStats struct {
	Context      string `json:"context"`
	Open         int    `json:"open"`
	Retiring     int    `json:"retiring"` // refreshed away, still carrying connections (at most 5 s)
	Dials        int64  `json:"dials"`
	DialFailures int64  `json:"dialFailures"`
	Reconnects   int64  `json:"reconnects"` // broken tunnels replaced
	// Direct counts connections opened on a WebSocket of their own, not on
	// a tunnel: the first to a pod not in use.
	Direct int64 `json:"direct"`
}

// APIStats counts one context's requests to its API server.
type APIStats struct {
	Context  string         `json:"context"`
	Requests []RequestCount `json:"requests"`
	// WatchErrors counts failed lists and watches (each is retried).
	WatchErrors int64 `json:"watchErrors"`
}

// RequestCount is how many requests of one verb on one resource were made.
type RequestCount struct {
	Verb     string `json:"verb"`
	Resource string `json:"resource"`
	Count    int64  `json:"count"`
}

// Forward is one Service (or one pod of a headless Service).
type Forward struct {
	Context   string   `json:"context"`
	Namespace string   `json:"namespace"`
	Service   string   `json:"service"`
	Pod       string   `json:"pod,omitempty"` // headless pod entries
	Address   string   `json:"address,omitempty"`
	Names     []string `json:"names,omitempty"`
	State     string   `json:"state"`
	Reason    string   `json:"reason,omitempty"`
	Ports     []Port   `json:"ports,omitempty"`
	Skipped   []string `json:"skipped,omitempty"` // ports not forwarded, with why
	// Endpoints are the Service's pods as its EndpointSlices list them,
	// ready or not (a headless pod entry: that pod).
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// Endpoint is one pod behind a Service.
type Endpoint struct {
	Pod         string `json:"pod"`
	Node        string `json:"node,omitempty"`
	IP          string `json:"ip,omitempty"`
	Ready       bool   `json:"ready"`
	Terminating bool   `json:"terminating,omitempty"`
}

// ForwardKey identifies a forward across snapshots.
type ForwardKey struct {
	Context   string `json:"context"`
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Pod       string `json:"pod,omitempty"`
}

// Key is the forward's identity.
func (f *Forward) Key() ForwardKey {
	return ForwardKey{Context: f.Context, Namespace: f.Namespace, Service: f.Service, Pod: f.Pod}
}

// CompareForwards is the order of Status.Forwards: by context, namespace,
// Service, then the Service before its pods.
func CompareForwards(a, b Forward) int {
	return cmp.Or(cmp.Compare(a.Context, b.Context), cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Service, b.Service), cmp.Compare(a.Pod, b.Pod))
}

// Port is one listening port of a forward.
type Port struct {
	Name     string `json:"name,omitempty"`     // the Service port's name
	Protocol string `json:"protocol,omitempty"` // TCP or UDP
	Port     int32  `json:"port"`               // the Service's
	Local    int32  `json:"local"`              // where we listen
	// Relay says why this port goes through the relay pod (svc --relay),
	// and how the relay stands; empty when it goes to pods directly.
	Relay       string   `json:"relay,omitempty"`
	Endpoints   []string `json:"endpoints"`
	Connections int64    `json:"connections"` // open now
	BytesIn     int64    `json:"bytesIn"`
	BytesOut    int64    `json:"bytesOut"`
	Failed      int64    `json:"failed"`
	// StreamErrors counts streams that failed to open or ended in an error.
	StreamErrors int64 `json:"streamErrors"`
	// Retried counts tries on another endpoint after one failed before
	// answering: failovers the client never saw.
	Retried int64 `json:"retried"`
	// LastError is why the last failed connection could not be carried.
	LastError   string     `json:"lastError,omitempty"`
	LastErrorAt *time.Time `json:"lastErrorAt,omitempty"`
}

// StatusUpdate is one line of the status stream (GET
// /v1/status?watch=1s). The first is the whole status (Reset); each later
// one has the small fields whole but only the forwards that changed since
// the line before, and the keys of those that went. At thousands of
// Services a follower so receives what moved, not everything every second.
type StatusUpdate struct {
	Reset bool `json:"reset,omitempty"`
	Status
	Removed []ForwardKey `json:"removed,omitempty"`
}

// Diff is the update that turns prev into next (both in CompareForwards
// order, as an instance gives them).
func Diff(prev, next Status) StatusUpdate {
	u := StatusUpdate{Status: next}
	u.Forwards = nil
	old := make(map[ForwardKey]int, len(prev.Forwards))
	for i := range prev.Forwards {
		old[prev.Forwards[i].Key()] = i
	}
	for i := range next.Forwards {
		k := next.Forwards[i].Key()
		j, ok := old[k]
		if !ok || !reflect.DeepEqual(prev.Forwards[j], next.Forwards[i]) {
			u.Forwards = append(u.Forwards, next.Forwards[i])
		}
		delete(old, k)
	}
	for k := range old {
		u.Removed = append(u.Removed, k)
	}
	slices.SortFunc(u.Removed, func(a, b ForwardKey) int {
		return CompareForwards(Forward{Context: a.Context, Namespace: a.Namespace, Service: a.Service, Pod: a.Pod},
			Forward{Context: b.Context, Namespace: b.Namespace, Service: b.Service, Pod: b.Pod})
	})
	return u
}

// Apply returns the status after u: u's own when it is a reset, else st
// with u's fields, its changed forwards in place and its removed ones gone.
// st is not modified.
func (st Status) Apply(u StatusUpdate) Status {
	next := u.Status
	if u.Reset {
		return next
	}
	changed := make(map[ForwardKey]Forward, len(u.Forwards))
	for _, f := range u.Forwards {
		changed[f.Key()] = f
	}
	gone := make(map[ForwardKey]bool, len(u.Removed))
	for _, k := range u.Removed {
		gone[k] = true
	}
	next.Forwards = make([]Forward, 0, len(st.Forwards)+len(u.Forwards))
	for _, f := range st.Forwards {
		k := f.Key()
		if gone[k] {
			continue
		}
		if c, ok := changed[k]; ok {
			f = c
			delete(changed, k)
		}
		next.Forwards = append(next.Forwards, f)
	}
	if len(changed) > 0 {
		for _, f := range u.Forwards {
			if _, ok := changed[f.Key()]; ok {
				next.Forwards = append(next.Forwards, f)
			}
		}
		slices.SortStableFunc(next.Forwards, CompareForwards)
	}
	return next
}

// ContextNamespaces is what one context forwards.
type ContextNamespaces struct {
	Context string `json:"context"`
	// All is set under -A: every namespace is forwarded and the list
	// cannot be changed.
	All        bool             `json:"all,omitempty"`
	Namespaces []NamespaceState `json:"namespaces"`
}

// NamespaceState describes one watched namespace.
type NamespaceState struct {
	Namespace string `json:"namespace"` // "" when watching all
	Synced    bool   `json:"synced"`
	Services  int    `json:"services"`
	Error     string `json:"error,omitempty"` // the last list/watch error
	Forbidden bool   `json:"forbidden,omitempty"`
}

// NamespaceRef is one namespace, in one context or (Context empty) in every
// context the instance forwards from.
type NamespaceRef struct {
	Context   string `json:"context,omitempty"`
	Namespace string `json:"namespace"`
}

func (r NamespaceRef) String() string {
	if r.Context == "" {
		return r.Namespace
	}
	return r.Context + "/" + r.Namespace
}

// ClusterNamespaces are the namespaces one context's cluster has, for a
// user choosing what to forward (Error says why they could not be listed).
type ClusterNamespaces struct {
	Context    string   `json:"context"`
	Namespaces []string `json:"namespaces"`
	Error      string   `json:"error,omitempty"`
}

// Namespace changes: the op of a change request.
const (
	NamespacesSet    = "set"
	NamespacesAdd    = "add"
	NamespacesRemove = "remove"
)

// ErrAllNamespaces is the error for a change to the namespaces of a
// context forwarded with -A (the API answers it with 409 Conflict).
var ErrAllNamespaces = errors.New("forwards all namespaces (-A); its namespaces cannot be changed")

// NamespaceChange is the outcome of changing the namespaces.
type NamespaceChange struct {
	Added   []NamespaceRef `json:"added"`
	Removed []NamespaceRef `json:"removed"`
	// Notes explain requests that changed nothing (adding a namespace
	// already forwarded, removing one that is not).
	Notes      []string            `json:"notes,omitempty"`
	Namespaces []ContextNamespaces `json:"namespaces"`
}

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
	EventHostsError       = "hosts-error"        // the hosts file could not be written (retried)
	EventNetworkChanged   = "network-changed"    // the machine's network changed: idle tunnels closed
	EventRelay            = "relay"              // a relay pod started, became ready, ended or was refused

	// The stream's own: the first line of every stream, and the last one
	// a client too slow to keep up gets before it is closed.
	EventSubscribed = "subscribed"
	EventDropped    = "dropped"
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

// Subscription delivers an instance's events until it is closed or its
// reader falls too far behind.
type Subscription interface {
	// Events is closed when the subscription ends.
	Events() <-chan Event
	// Dropped says whether it ended because its reader was too slow.
	Dropped() bool
	// Recent is what happened before the subscription began (the instance
	// keeps its last events), oldest first, without gap or repeat.
	Recent() []Event
	Close()
}

// LogsRequest asks for the log of one pod of a forwarded Service.
type LogsRequest struct {
	// Service is web, web.demo2, svc.ns, ns/svc or ctx/ns/svc, as for
	// refresh.
	Service string
	// Pod is one of the Service's ready pods; the first when empty.
	Pod string
	// Container is needed when the pod has several.
	Container string
	// Tail is the number of last lines (all when 0).
	Tail int64
	// Follow streams new lines until the request ends.
	Follow bool
}

// LogSource is the log a logs request reads: the pod, the container (the
// pod's default one when none was asked for) and the pod's containers, for
// a viewer that lets the user choose.
type LogSource struct {
	Pod        string   `json:"pod"`
	Container  string   `json:"container,omitempty"`
	Containers []string `json:"containers,omitempty"`
}

// NotFoundError is an answer about something the request named that the
// instance does not have (the API answers it with 404).
type NotFoundError struct{ Message string }

func (e *NotFoundError) Error() string { return e.Message }

// Match returns the indexes of the forwards want names, as every client
// reads a Service name: a hostname kubefwd wrote (web, web.demo2) means the
// forwards that carry it; otherwise svc (in every namespace), svc.ns, ns/svc
// or ctx/ns/svc means that Service's forwards, its pods' included.
func Match(forwards []Forward, want string) []int {
	var hits []int
	for i, f := range forwards {
		if slices.Contains(f.Names, want) {
			hits = append(hits, i)
		}
	}
	if len(hits) > 0 {
		return hits
	}
	for i, f := range forwards {
		if want == f.Service || want == f.Service+"."+f.Namespace ||
			strings.Contains(want, "/") && (want == f.Namespace+"/"+f.Service || want == f.Context+"/"+f.Namespace+"/"+f.Service) {
			hits = append(hits, i)
		}
	}
	return hits
}
