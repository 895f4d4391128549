package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/forward"
)

// forwardEntry is one forward's status as published, with what the
// engine keeps beside it: each port's live forward (Ports[i] is pfs[i]'s),
// read for counters and endpoints at every snapshot, and the ready pods
// when published, to report changes.
type forwardEntry struct {
	api.Forward
	pfs          []*portForward
	endpointPods []string
}

// Status returns a snapshot; safe to call from any goroutine.
func (e *Engine) Status() api.Status {
	e.statusMu.Lock()
	out := make([]api.Forward, 0, len(e.status))
	for _, entries := range e.status {
		for _, fe := range entries {
			fs := fe.Forward
			fs.Ports = slices.Clone(fs.Ports)
			for i := range fs.Ports {
				fillPort(&fs.Ports[i], fe.pfs[i])
			}
			troubles := make([]forward.TroubleState, len(fe.pfs))
			for i, pf := range fe.pfs {
				troubles[i] = pf.counters.Trouble.State()
			}
			reachState(&fs, troubles, time.Now())
			out = append(out, fs)
		}
	}
	e.statusMu.Unlock()
	slices.SortFunc(out, api.CompareForwards)
	st := api.Status{Version: e.opts.Version, Started: e.started, Contexts: slices.Clone(e.contexts), Forwards: out, Namespaces: e.Namespaces()}
	e.mu.Lock()
	for _, s := range e.hostsSkipped {
		st.HostsSkipped = append(st.HostsSkipped, api.SkippedName{Name: s.Name, Reason: s.Reason})
	}
	st.HostsError = e.hostsErr
	e.mu.Unlock()
	for _, name := range e.contexts {
		cl := e.clusters[name]
		pool := cl.pool
		st.Tunnels = append(st.Tunnels, api.TunnelStats{
			Context: name, Open: pool.Len(), Retiring: int(pool.Retiring.Load()), Dials: pool.Dials.Load(), DialFailures: pool.DialFailures.Load(), Reconnects: pool.Reconnects.Load(), Direct: pool.Directs.Load(),
		})
		e.watchErrMu.Lock()
		stats := api.APIStats{Context: name, WatchErrors: e.watchFails[name]}
		e.watchErrMu.Unlock()
		if cl.target.Requests != nil {
			stats.Requests = cl.target.Requests.Snapshot()
		}
		st.API = append(st.API, stats)
		if cl.relay != nil && cl.relay.Wanted() {
			rs := cl.relay.State()
			st.Relays = append(st.Relays, api.Relay{Context: name, Namespace: cl.relay.Namespace(), Pod: rs.Pod, Ready: rs.Ready, Reason: rs.Reason})
		}
	}
	return st
}

func fillPort(p *api.Port, pf *portForward) {
	for _, ep := range pf.eps.List() {
		p.Endpoints = append(p.Endpoints, ep.String())
	}
	c := pf.counters
	p.Connections, p.BytesIn, p.BytesOut, p.Failed = c.Active.Load(), c.BytesIn.Load(), c.BytesOut.Load(), c.Failed.Load()
	p.StreamErrors, p.Retried = c.StreamErrors.Load(), c.Retried.Load()
	if f := pf.lastErr.Load(); f != nil {
		at := f.at
		p.LastError, p.LastErrorAt = f.msg, &at
	}
}

// reachState turns an active forward's state into what its connections
// found, when they could not reach a pod: forbidden, or unreachable with
// the cause (and "retrying in N s" while a connection waits to try again,
// N being that connection's pause). Read at every snapshot: connections,
// not reconciles, learn it.
// troubles[i] is f.Ports[i]'s.
func reachState(f *api.Forward, troubles []forward.TroubleState, now time.Time) {
	if f.State != api.StateActive {
		return
	}
	for i, st := range troubles {
		if len(f.Ports[i].Endpoints) == 0 || st.Err == nil {
			continue
		}
		f.State, f.Reason = troubleState(f.Namespace, st, now)
		if len(troubles) > 1 {
			f.Reason = fmt.Sprintf("port %d: %s", f.Ports[i].Port, f.Reason)
		}
		return
	}
}

// troubleState is the state and reason of a port in namespace whose
// connections learned st: active when they got through.
func troubleState(namespace string, st forward.TroubleState, now time.Time) (state, reason string) {
	var status *apierrors.StatusError
	switch {
	case st.Err == nil:
		return api.StateActive, ""
	case st.Forbidden && errors.As(st.Err, &status):
		// The verb denied depends on the transport and the server's
		// version (get for WebSocket before 1.35, create else): name both.
		return api.StateForbidden, fmt.Sprintf("kubefwd cannot port-forward in namespace %s: RBAC denies pods/portforward (it needs get and create); the API server said: %s",
			namespace, status.ErrStatus.Message)
	case !st.RetryAt.IsZero() && st.RetryAt.After(now):
		return api.StateUnreachable, fmt.Sprintf("retrying in %d s: %v", int(math.Ceil(st.RetryAt.Sub(now).Seconds())), st.Err)
	case !st.RetryAt.IsZero():
		return api.StateUnreachable, fmt.Sprintf("retrying now: %v", st.Err)
	}
	return api.StateUnreachable, fmt.Sprintf("%v; the next connection tries again", st.Err)
}

// publish records the status of key after a reconcile (worker only).
func (e *Engine) publish(key catalog.Key, f *svcForward, desired *catalog.Service, reason string) {
	var entries []forwardEntry
	base := api.Forward{Context: key.Context, Namespace: key.Namespace, Service: key.Name}
	if desired != nil {
		for _, s := range desired.Skipped {
			base.Skipped = append(base.Skipped, s.Port+": "+s.Reason)
		}
		base.Endpoints = members(desired.Members, "")
	}
	switch {
	case f == nil && reason == "":
		// gone
	case f == nil:
		st := forwardEntry{Forward: base}
		st.State, st.Reason = api.StateNotForwarded, reason
		entries = append(entries, st)
	default:
		st := forwardEntry{Forward: base}
		st.Address, st.Names = f.addr.String(), f.names
		st.Ports, st.pfs = portStatuses(f.ports)
		st.State, st.Reason = portsState(st.pfs, reason)
		entries = append(entries, st)
		for name, pf := range f.pods {
			ps := forwardEntry{Forward: base}
			ps.Pod, ps.Address, ps.Names = name, pf.addr.String(), pf.names
			ps.Endpoints = members(desired.Members, name)
			ps.Ports, ps.pfs = portStatuses(pf.ports)
			ps.State, ps.Reason = portsState(ps.pfs, "")
			entries = append(entries, ps)
		}
	}
	for i := range entries {
		entries[i].endpointPods = readyPods(entries[i].pfs)
	}
	e.record(key, entries)
}

// record makes entries key's status and tells event followers what changed.
func (e *Engine) record(key catalog.Key, entries []forwardEntry) {
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

// publishPaused records a Service the user paused.
func (e *Engine) publishPaused(key catalog.Key, desired *catalog.Service) {
	base := api.Forward{Context: key.Context, Namespace: key.Namespace, Service: key.Name,
		State: api.StatePaused, Reason: pausedReason(key)}
	for _, s := range desired.Skipped {
		base.Skipped = append(base.Skipped, s.Port+": "+s.Reason)
	}
	base.Endpoints = members(desired.Members, "")
	e.record(key, []forwardEntry{{Forward: base}})
}

// members is the Service's pods for its status (only pod, if given).
func members(ms []catalog.Member, pod string) []api.Endpoint {
	var out []api.Endpoint
	for _, m := range ms {
		if pod == "" || m.Pod == pod {
			out = append(out, api.Endpoint{Pod: m.Pod, Node: m.Node, IP: m.IP, Ready: m.Ready, Terminating: m.Terminating})
		}
	}
	return out
}

func readyPods(pfs []*portForward) []string {
	var pods []string
	for _, pf := range pfs {
		for _, ep := range pf.eps.List() {
			if !slices.Contains(pods, ep.Pod.Name) {
				pods = append(pods, ep.Pod.Name)
			}
		}
	}
	slices.Sort(pods)
	return pods
}

// reportChanges tells event followers how a Service's forwards changed.
func (e *Engine) reportChanges(prev, next []forwardEntry) {
	find := func(list []forwardEntry, pod string) *forwardEntry {
		for i := range list {
			if list[i].Pod == pod {
				return &list[i]
			}
		}
		return nil
	}
	for _, n := range next {
		ev := api.Event{Context: n.Context, Namespace: n.Namespace, Service: n.Service, Pod: n.Pod}
		p := find(prev, n.Pod)
		if p == nil || p.State != n.State || p.Reason != n.Reason || p.Address != n.Address {
			fwd := ev
			fwd.Type, fwd.State, fwd.Reason, fwd.Address = api.EventForward, n.State, n.Reason, n.Address
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
				removed.Type, removed.Pod = api.EventEndpointRemoved, pod
				e.events.emit(removed)
			}
		}
		for _, pod := range n.endpointPods {
			if !slices.Contains(before, pod) {
				added := ev
				added.Type, added.Pod = api.EventEndpointAdded, pod
				e.events.emit(added)
			}
		}
	}
	for _, p := range prev {
		if find(next, p.Pod) == nil {
			e.events.emit(api.Event{Type: api.EventForwardRemoved, Context: p.Context, Namespace: p.Namespace, Service: p.Service, Pod: p.Pod, Address: p.Address})
		}
	}
}

func portStatuses(ports map[listenKey]*portForward) ([]api.Port, []*portForward) {
	keys := make([]listenKey, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b listenKey) int {
		if a.port != b.port {
			return cmp.Compare(a.port, b.port)
		}
		if a.udp == b.udp {
			return 0
		}
		if a.udp {
			return 1
		}
		return -1
	})
	out := make([]api.Port, 0, len(keys))
	pfs := make([]*portForward, 0, len(keys))
	for _, k := range keys {
		pf := ports[k]
		p := api.Port{Name: pf.name, Protocol: "TCP", Port: pf.port, Local: k.port, Relay: pf.relay}
		if k.udp {
			p.Protocol = "UDP"
		}
		out = append(out, p)
		pfs = append(pfs, pf)
	}
	return out, pfs
}

// portsState is active when some port has a ready endpoint.
func portsState(pfs []*portForward, reason string) (string, string) {
	for _, pf := range pfs {
		if len(pf.eps.List()) > 0 {
			return api.StateActive, reason
		}
	}
	if reason == "" {
		reason = "no ready pod; connections wait for one"
		for _, pf := range pfs {
			if strings.HasPrefix(pf.relay, relayWaiting) {
				reason = pf.relay // the relay, not a pod, is what they wait for
				break
			}
		}
	}
	return api.StateWaiting, reason
}
