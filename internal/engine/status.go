package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/catalog"
)

// Forward states.
const (
	StateActive       = "active"
	StateWaiting      = "waiting for endpoints"
	StateNotForwarded = "not forwarded"
)

// Status is a snapshot of every forward, for `kubefwd status` and tools.
type Status struct {
	Started  time.Time       `json:"started"`
	Contexts []string        `json:"contexts"`
	Forwards []ForwardStatus `json:"forwards"`
	Tunnels  []TunnelStats   `json:"tunnels"`
}

// TunnelStats counts one context's tunnel dials.
type TunnelStats struct {
	Context      string `json:"context"`
	Open         int    `json:"open"`
	Dials        int64  `json:"dials"`
	DialFailures int64  `json:"dialFailures"`
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
	var contexts []string
	for name := range e.clusters {
		contexts = append(contexts, name)
	}
	slices.Sort(contexts)
	var tunnels []TunnelStats
	for _, name := range contexts {
		pool := e.clusters[name].pool
		tunnels = append(tunnels, TunnelStats{Context: name, Open: pool.Len(), Dials: pool.Dials.Load(), DialFailures: pool.DialFailures.Load()})
	}
	return Status{Started: e.started, Contexts: contexts, Forwards: out, Tunnels: tunnels}
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
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	if len(entries) == 0 {
		delete(e.status, key)
		return
	}
	e.status[key] = entries
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
