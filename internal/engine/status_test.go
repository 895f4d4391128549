package engine

import (
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/forward"
)

// What a forward's connections learned turns an active forward into
// unreachable (with the retry's N, rounded up, and the cause) or forbidden
// (with the RBAC reason); other states, ports without endpoints and ports
// without trouble are left as they are.
func TestReachState(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	refused := errors.New("pod demo/web-1 port 8080: connection refused")
	denied := fmt.Errorf("tunnel to pod demo/web-1: %w", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-1",
		errors.New(`User "me" cannot create resource "pods/portforward" in API group "" in the namespace "demo"`)))
	port := func(p int32, eps ...string) api.Port { return api.Port{Port: p, Local: p, Endpoints: eps} }
	for _, tc := range []struct {
		name       string
		state      string
		ports      []api.Port
		troubles   []forward.TroubleState
		wantState  string
		wantReason string
	}{
		{"no trouble", api.StateActive, []api.Port{port(80, "demo/web-1:8080")}, []forward.TroubleState{{}},
			api.StateActive, ""},
		{"a connection waits 1.2 s", api.StateActive, []api.Port{port(80, "demo/web-1:8080")},
			[]forward.TroubleState{{Err: refused, RetryAt: now.Add(1200 * time.Millisecond)}},
			api.StateUnreachable, "retrying in 2 s: pod demo/web-1 port 8080: connection refused"},
		{"its pause is over: trying", api.StateActive, []api.Port{port(80, "demo/web-1:8080")},
			[]forward.TroubleState{{Err: refused, RetryAt: now.Add(-time.Millisecond)}},
			api.StateUnreachable, "retrying now: pod demo/web-1 port 8080: connection refused"},
		{"nobody waits", api.StateActive, []api.Port{port(80, "demo/web-1:8080")},
			[]forward.TroubleState{{Err: refused}},
			api.StateUnreachable, "pod demo/web-1 port 8080: connection refused; the next connection tries again"},
		{"refused by RBAC", api.StateActive, []api.Port{port(80, "demo/web-1:8080")},
			[]forward.TroubleState{{Err: denied, Forbidden: true}},
			api.StateForbidden, `kubefwd cannot port-forward in namespace demo: RBAC denies pods/portforward (it needs get and create); the API server said: pods "web-1" is forbidden: User "me" cannot create resource "pods/portforward" in API group "" in the namespace "demo"`},
		{"two ports: says which", api.StateActive, []api.Port{port(80, "demo/web-1:8080"), port(443, "demo/web-1:8443")},
			[]forward.TroubleState{{}, {Err: refused, RetryAt: now.Add(time.Second)}},
			api.StateUnreachable, "port 443: retrying in 1 s: pod demo/web-1 port 8080: connection refused"},
		{"a port without endpoints is waiting, not unreachable", api.StateActive, []api.Port{port(80), port(443, "demo/web-1:8443")},
			[]forward.TroubleState{{Err: refused}, {}}, api.StateActive, ""},
		{"paused stays paused", api.StatePaused, []api.Port{port(80, "demo/web-1:8080")},
			[]forward.TroubleState{{Err: refused}}, api.StatePaused, ""},
	} {
		f := api.Forward{Namespace: "demo", Service: "web", State: tc.state, Ports: tc.ports}
		reachState(&f, tc.troubles, now)
		if f.State != tc.wantState || f.Reason != tc.wantReason {
			t.Errorf("%s: %s, %q; want %s, %q", tc.name, f.State, f.Reason, tc.wantState, tc.wantReason)
		}
	}
}
