package engine

import (
	"context"
	"os"
	"strconv"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/internal/relay"
	"github.com/kubefwd/kubefwd/internal/relaypod"
)

// newRelay prepares the relay pod of cl's context (created when a Service
// first needs it).
func (e *Engine) newRelay(cl *cluster) *relaypod.Manager {
	ns := e.opts.Relay.Namespace
	if ns == "" && len(cl.target.Namespaces) > 0 {
		ns = cl.target.Namespaces[0]
	}
	return relaypod.New(relaypod.Options{
		API:       cl.target.Client,
		Namespace: ns,
		Image:     e.opts.Relay.Image,
		Host:      e.opts.Relay.Host,
		PID:       os.Getpid(),
		Ping: func(ctx context.Context, pod string) error {
			return cl.proxy.AskRelay(ctx, forward.Pod{Namespace: ns, Name: pod}, relaypod.Port, relay.Ping)
		},
		// Whatever goes through the relay is reconciled again: it starts,
		// stops or is refused.
		Changed: func() {
			if m := cl.relay; m != nil {
				st := m.State()
				state := "ready"
				if !st.Ready {
					state = "not ready"
				}
				e.events.emit(api.Event{Type: api.EventRelay, Context: cl.target.Context, Namespace: m.Namespace(), Pod: st.Pod, State: state, Reason: st.Reason})
			}
			cl.relayMu.Lock()
			keys := make([]catalog.Key, 0, len(cl.relayUsers))
			for k := range cl.relayUsers {
				keys = append(keys, k)
			}
			cl.relayMu.Unlock()
			for _, k := range keys {
				e.queue.Add(k)
			}
		},
		Log: e.log.With("context", cl.target.Context),
	})
}

// useRelay records whether key has ports through the relay, and asks for
// the relay when it does.
func (cl *cluster) useRelay(key catalog.Key, uses bool) {
	if cl.relay == nil {
		return
	}
	cl.relayMu.Lock()
	if uses {
		cl.relayUsers[key] = true
	} else {
		delete(cl.relayUsers, key)
	}
	cl.relayMu.Unlock()
	if uses {
		cl.relay.Want()
	}
}

// viaRelay points the relay ports of desired at the relay pod once it
// runs; until then they wait, with why. A relay the user may not create
// leaves them out, with the reason, and the rest forwarded.
func viaRelay(namespace string, st relaypod.State, desired *catalog.Service) {
	route := func(ports []catalog.Port) []catalog.Port {
		var keep []catalog.Port
		for _, p := range ports {
			if p.Relay == "" {
				keep = append(keep, p)
				continue
			}
			// Endpoints with a Target go through the relay; pods among
			// them (a Service with both) keep the direct path.
			var direct, relayed []forward.Endpoint
			for _, ep := range p.Endpoints {
				if ep.Target == "" {
					direct = append(direct, ep)
				} else {
					relayed = append(relayed, ep)
				}
			}
			if st.Forbidden && len(direct) == 0 && p.Relay != catalog.RelaySomeNot {
				desired.Skipped = append(desired.Skipped, catalog.Skip{Port: portName(p), Reason: st.Reason})
				continue
			}
			p.Endpoints = direct
			switch {
			case st.Ready:
				for _, ep := range relayed {
					p.Endpoints = append(p.Endpoints, forward.Endpoint{Pod: forward.Pod{Namespace: namespace, Name: st.Pod}, Port: relaypod.Port, Target: ep.Target})
				}
				p.Relay = "via relay " + namespace + "/" + st.Pod + ", because " + p.Relay
			default:
				p.Relay = relayWaiting + p.Relay + "; " + st.Reason
			}
			keep = append(keep, p)
		}
		return keep
	}
	desired.Ports = route(desired.Ports)
	for i := range desired.Pods {
		desired.Pods[i].Ports = route(desired.Pods[i].Ports)
	}
	if len(desired.Ports) == 0 && desired.NotForwarded == "" {
		desired.NotForwarded = st.Reason
		desired.Pods = nil
	}
}

// relayWaiting begins the relay text of a port whose relay does not run
// yet (the rest says why it goes through the relay, and what it waits for).
const relayWaiting = "via relay, because "

func portName(p catalog.Port) string {
	label := string(p.Protocol)
	if p.Name != "" {
		return p.Name + " (" + strconv.Itoa(int(p.Port)) + "/" + label + ")"
	}
	return strconv.Itoa(int(p.Port)) + "/" + label
}
