package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/kube"
)

// Forward states.
const (
	StateActive       = "active"
	StateWaiting      = "waiting for endpoints"
	StateNotForwarded = "not forwarded"
)

// Status is a snapshot of every forward, for `kubefwd status` and tools.
type Status struct {
	Version    string              `json:"version,omitempty"`
	Started    time.Time           `json:"started"`
	Contexts   []string            `json:"contexts"`
	Namespaces []ContextNamespaces `json:"namespaces"`
	Forwards   []ForwardStatus     `json:"forwards"`
	Tunnels    []TunnelStats       `json:"tunnels"`
	API        []APIStats          `json:"api"`
	// HostsSkipped are the names the last hosts write left out, and why
	// (not valid there, the user's own entry, refused by the helper).
	HostsSkipped []hosts.Skipped `json:"hostsSkipped,omitempty"`
}

// TunnelStats counts one context's tunnel dials.
type TunnelStats struct {
	Context      string `json:"context"`
	Open         int    `json:"open"`
	Retiring     int    `json:"retiring"` // refreshed away, still carrying connections (at most 5 s)
	Dials        int64  `json:"dials"`
	DialFailures int64  `json:"dialFailures"`
	Reconnects   int64  `json:"reconnects"` // broken tunnels replaced
}

// APIStats counts one context's requests to its API server.
type APIStats struct {
	Context  string              `json:"context"`
	Requests []kube.RequestCount `json:"requests"`
	// WatchErrors counts failed lists and watches (each is retried).
	WatchErrors int64 `json:"watchErrors"`
}

// ForwardStatus is one Service (or one pod of a headless Service).
type ForwardStatus struct {
	Context   string       `json:"context"`
	Namespace string       `json:"namespace"`
	Service   string       `json:"service"`
	Pod       string       `json:"pod,omitempty"` // headless pod entries
	Address   string       `json:"address,omitempty"`
	Names     []string     `json:"names,omitempty"`
	State     string       `json:"state"`
	Reason    string       `json:"reason,omitempty"`
	Ports     []PortStatus `json:"ports,omitempty"`
	Skipped   []string     `json:"skipped,omitempty"` // ports not forwarded, with why

	endpointPods []string // ready pods when published, to report changes
}

// PortStatus is one listening port.
type PortStatus struct {
	Port        int32    `json:"port"`  // the Service's
	Local       int32    `json:"local"` // where we listen
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

	pf *portForward // live counters and endpoints
}

// Status returns a snapshot; safe to call from any goroutine.
func (e *Engine) Status() Status {
	e.statusMu.Lock()
	out := make([]ForwardStatus, 0, len(e.status))
	for _, entries := range e.status {
		for _, fs := range entries {
			fs.Ports = slices.Clone(fs.Ports)
			for i := range fs.Ports {
				fillPort(&fs.Ports[i])
			}
			out = append(out, fs)
		}
	}
	e.statusMu.Unlock()
	slices.SortFunc(out, func(a, b ForwardStatus) int {
		return strings.Compare(a.Context+"/"+a.Namespace+"/"+a.Service+"/"+a.Pod, b.Context+"/"+b.Namespace+"/"+b.Service+"/"+b.Pod)
	})
	st := Status{Version: e.opts.Version, Started: e.started, Contexts: slices.Clone(e.contexts), Forwards: out, Namespaces: e.Namespaces()}
	e.mu.Lock()
	st.HostsSkipped = slices.Clone(e.hostsSkipped)
	e.mu.Unlock()
	for _, name := range e.contexts {
		cl := e.clusters[name]
		pool := cl.pool
		st.Tunnels = append(st.Tunnels, TunnelStats{
			Context: name, Open: pool.Len(), Retiring: int(pool.Retiring.Load()), Dials: pool.Dials.Load(), DialFailures: pool.DialFailures.Load(), Reconnects: pool.Reconnects.Load(),
		})
		e.watchErrMu.Lock()
		api := APIStats{Context: name, WatchErrors: e.watchFails[name]}
		e.watchErrMu.Unlock()
		if cl.target.Requests != nil {
			api.Requests = cl.target.Requests.Snapshot()
		}
		st.API = append(st.API, api)
	}
	return st
}

func fillPort(p *PortStatus) {
	if p.pf == nil {
		return
	}
	for _, ep := range p.pf.eps.List() {
		p.Endpoints = append(p.Endpoints, ep.String())
	}
	c := p.pf.counters
	p.Connections, p.BytesIn, p.BytesOut, p.Failed = c.Active.Load(), c.BytesIn.Load(), c.BytesOut.Load(), c.Failed.Load()
	p.StreamErrors, p.Retried = c.StreamErrors.Load(), c.Retried.Load()
	if f := p.pf.lastErr.Load(); f != nil {
		at := f.at
		p.LastError, p.LastErrorAt = f.msg, &at
	}
}

// publish records the status of key after a reconcile (worker only).
func (e *Engine) publish(key catalog.Key, f *svcForward, desired *catalog.Service, reason string) {
	var entries []ForwardStatus
	base := ForwardStatus{Context: key.Context, Namespace: key.Namespace, Service: key.Name}
	if desired != nil {
		for _, s := range desired.Skipped {
			base.Skipped = append(base.Skipped, s.Port+": "+s.Reason)
		}
	}
	switch {
	case f == nil && reason == "":
		// gone
	case f == nil:
		st := base
		st.State, st.Reason = StateNotForwarded, reason
		entries = append(entries, st)
	default:
		st := base
		st.Address, st.Names = f.addr.String(), f.names
		st.Ports = portStatuses(f.ports)
		st.State, st.Reason = portsState(st.Ports, reason)
		entries = append(entries, st)
		for name, pf := range f.pods {
			ps := base
			ps.Pod, ps.Address, ps.Names = name, pf.addr.String(), pf.names
			ps.Ports = portStatuses(pf.ports)
			ps.State, ps.Reason = portsState(ps.Ports, "")
			entries = append(entries, ps)
		}
	}
	for i := range entries {
		entries[i].endpointPods = readyPods(entries[i].Ports)
	}
	e.statusMu.Lock()
	prev := e.status[key]
	if len(entries) == 0 {
		delete(e.status, key)
	} else {
		e.status[key] = entries
	}
	e.statusMu.Unlock()
	e.reportChanges(prev, entries)
}

func readyPods(ports []PortStatus) []string {
	var pods []string
	for _, p := range ports {
		if p.pf == nil {
			continue
		}
		for _, ep := range p.pf.eps.List() {
			if !slices.Contains(pods, ep.Pod.Name) {
				pods = append(pods, ep.Pod.Name)
			}
		}
	}
	slices.Sort(pods)
	return pods
}

// reportChanges tells event followers how a Service's forwards changed.
func (e *Engine) reportChanges(prev, next []ForwardStatus) {
	find := func(list []ForwardStatus, pod string) *ForwardStatus {
		for i := range list {
			if list[i].Pod == pod {
				return &list[i]
			}
		}
		return nil
	}
	for _, n := range next {
		ev := Event{Context: n.Context, Namespace: n.Namespace, Service: n.Service, Pod: n.Pod}
		p := find(prev, n.Pod)
		if p == nil || p.State != n.State || p.Reason != n.Reason || p.Address != n.Address {
			fwd := ev
			fwd.Type, fwd.State, fwd.Reason, fwd.Address = EventForward, n.State, n.Reason, n.Address
			e.events.emit(fwd)
		}
		var before []string
		if p != nil {
			before = p.endpointPods
		}
		// Removals first: a pod replaced within one change reads as the old
		// one leaving, then the new one arriving.
		for _, pod := range before {
			if !slices.Contains(n.endpointPods, pod) {
				removed := ev
				removed.Type, removed.Pod = EventEndpointRemoved, pod
				e.events.emit(removed)
			}
		}
		for _, pod := range n.endpointPods {
			if !slices.Contains(before, pod) {
				added := ev
				added.Type, added.Pod = EventEndpointAdded, pod
				e.events.emit(added)
			}
		}
	}
	for _, p := range prev {
		if find(next, p.Pod) == nil {
			e.events.emit(Event{Type: EventForwardRemoved, Context: p.Context, Namespace: p.Namespace, Service: p.Service, Pod: p.Pod, Address: p.Address})
		}
	}
}

func portStatuses(ports map[int32]*portForward) []PortStatus {
	var out []PortStatus
	for local, pf := range ports {
		out = append(out, PortStatus{Port: pf.port, Local: local, pf: pf})
	}
	slices.SortFunc(out, func(a, b PortStatus) int { return int(a.Local - b.Local) })
	return out
}

// portsState is active when some port has a ready endpoint.
func portsState(ports []PortStatus, reason string) (string, string) {
	for _, p := range ports {
		if p.pf != nil && len(p.pf.eps.List()) > 0 {
			return StateActive, reason
		}
	}
	if reason == "" {
		reason = "no ready pod; connections wait for one"
	}
	return StateWaiting, reason
}
