package engine

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/internal/relaypod"
)

// viaRelay sends the relayed endpoints to the relay pod once it runs,
// keeps pods on the direct path, and leaves out with the reason what only
// the relay could carry when it may not be created.
func TestViaRelay(t *testing.T) {
	pod := forward.Endpoint{Pod: forward.Pod{Namespace: "ns", Name: "web-0"}, Port: 8080}
	other := forward.Endpoint{Target: "192.0.2.7:8080"}
	desired := func() catalog.Service {
		return catalog.Service{Ports: []catalog.Port{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, Local: 80, Endpoints: []forward.Endpoint{other, pod}, Relay: catalog.RelaySomeNot},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, Local: 53, Endpoints: []forward.Endpoint{{Target: "10.0.0.1:53"}}, Relay: catalog.RelayUDP},
			{Name: "admin", Protocol: corev1.ProtocolTCP, Port: 81, Local: 81, Endpoints: []forward.Endpoint{pod}},
		}}
	}
	relay := forward.Pod{Namespace: "tools", Name: "kubefwd-relay-x"}

	ready := desired()
	viaRelay("tools", relaypod.State{Pod: relay.Name, Ready: true}, &ready)
	if got := ready.Ports[0].Endpoints; !slices.Equal(got, []forward.Endpoint{pod, {Pod: relay, Port: relaypod.Port, Target: other.Target}}) {
		t.Errorf("ready, mixed port: %+v", got)
	}
	if p := ready.Ports[1]; !strings.HasPrefix(p.Relay, "via relay tools/kubefwd-relay-x, because UDP") ||
		!slices.Equal(p.Endpoints, []forward.Endpoint{{Pod: relay, Port: relaypod.Port, Target: "10.0.0.1:53"}}) {
		t.Errorf("ready, UDP port: %+v", p)
	}
	if p := ready.Ports[2]; p.Relay != "" || !slices.Equal(p.Endpoints, []forward.Endpoint{pod}) {
		t.Errorf("a direct port changed: %+v", p)
	}

	starting := desired()
	viaRelay("tools", relaypod.State{Reason: "waiting for the relay pod to run"}, &starting)
	if p := starting.Ports[0]; !slices.Equal(p.Endpoints, []forward.Endpoint{pod}) || !strings.Contains(p.Relay, "waiting for the relay pod") {
		t.Errorf("starting, mixed port: %+v", p)
	}
	if p := starting.Ports[1]; len(p.Endpoints) != 0 || !strings.Contains(p.Relay, "waiting") {
		t.Errorf("starting, UDP port: %+v", p)
	}

	refused := desired()
	reason := "cannot create the relay (forbidden: no)"
	viaRelay("tools", relaypod.State{Reason: reason, Forbidden: true}, &refused)
	if len(refused.Ports) != 2 || refused.Ports[0].Name != "http" || refused.Ports[1].Name != "admin" ||
		!slices.Equal(refused.Ports[0].Endpoints, []forward.Endpoint{pod}) {
		t.Errorf("refused: ports %+v", refused.Ports)
	}
	if len(refused.Skipped) != 1 || refused.Skipped[0].Port != "dns (53/UDP)" || refused.Skipped[0].Reason != reason || refused.NotForwarded != "" {
		t.Errorf("refused: skipped %+v, not forwarded %q", refused.Skipped, refused.NotForwarded)
	}

	udpOnly := catalog.Service{Ports: []catalog.Port{desired().Ports[1]}}
	viaRelay("tools", relaypod.State{Reason: reason, Forbidden: true}, &udpOnly)
	if udpOnly.NotForwarded != reason || len(udpOnly.Ports) != 0 {
		t.Errorf("refused, nothing else: %+v", udpOnly)
	}
}

// A forward whose ports wait for the relay says so, not that it waits for
// a pod.
func TestWaitingForTheRelay(t *testing.T) {
	udp := &portForward{eps: forward.NewEndpoints(false), relay: relayWaiting + catalog.RelayUDP + "; waiting for the relay pod to run"}
	if state, reason := portsState([]*portForward{udp}, ""); state != api.StateWaiting || !strings.Contains(reason, "waiting for the relay pod") {
		t.Errorf("%s: %q", state, reason)
	}
	plain := &portForward{eps: forward.NewEndpoints(false), relay: "via relay tools/r, because " + catalog.RelayUDP}
	if _, reason := portsState([]*portForward{plain}, ""); !strings.Contains(reason, "no ready pod") {
		t.Errorf("relay running, no pod: %q", reason)
	}
}
