package mcpserver

import (
	"strings"
	"testing"

	"github.com/kubefwd/kubefwd/internal/api"
)

func TestDiagnose(t *testing.T) {
	at := api.Status{
		Namespaces: []api.ContextNamespaces{{Context: "dev", Namespaces: []api.NamespaceState{
			{Namespace: "demo", Synced: true},
			{Namespace: "locked", Forbidden: true, Error: `services is forbidden: User "me" cannot list resource "services"`},
		}}},
		Forwards: []api.Forward{
			{Context: "dev", Namespace: "demo", Service: "web", State: api.StateActive, Address: "127.1.0.1", Names: []string{"web", "web.demo"},
				Ports: []api.Port{{Port: 80, Local: 80}}},
			{Context: "dev", Namespace: "demo", Service: "api", State: api.StateWaiting, Reason: "no ready pod; connections wait for one", Address: "127.1.0.2",
				Names: []string{"api"}, Ports: []api.Port{{Port: 8080, Local: 8080}}},
			{Context: "dev", Namespace: "demo", Service: "external", State: api.StateNotForwarded, Reason: "ExternalName Service"},
			{Context: "dev", Namespace: "demo", Service: "alias", State: api.StateNotForwarded, Reason: "ExternalName Service (an alias of x): there is no pod to port-forward to (--relay carries it through a relay pod)"},
			{Context: "dev", Namespace: "demo", Service: "stats", State: api.StateNotForwarded, Reason: "cannot create the relay (forbidden: may not create pods in namespace demo)"},
			{Context: "dev", Namespace: "demo", Service: "db", State: api.StatePaused, Reason: "by you; kubefwd resume demo/db forwards it again"},
			{Context: "dev", Namespace: "demo", Service: "cache", State: api.StateActive, Address: "127.1.0.3", Names: []string{"cache"},
				Ports: []api.Port{{Port: 6379, Local: 6379, Failed: 3, LastError: "tunnel to pod demo/cache-1: 403 Forbidden"}}},
			{Context: "dev", Namespace: "demo", Service: "orders", State: api.StateUnreachable, Address: "127.1.0.4", Names: []string{"orders"},
				Reason: "retrying in 2 s: pod demo/orders-1 port 8080: connection refused", Ports: []api.Port{{Port: 80, Local: 80}}},
			{Context: "dev", Namespace: "demo", Service: "stock", State: api.StateForbidden, Address: "127.1.0.5", Names: []string{"stock"},
				Reason: "kubefwd cannot port-forward in namespace demo: RBAC denies pods/portforward", Ports: []api.Port{{Port: 80, Local: 80}}},
		},
		Tunnels:      []api.TunnelStats{{Context: "dev", Dials: 5, DialFailures: 3}},
		HostsSkipped: []api.SkippedName{{Name: "mine", Reason: "the hosts file maps it itself"}},
	}
	for _, tc := range []struct {
		service string
		healthy bool
		want    []string // in the findings, in order
	}{
		{"web", true, nil},
		{"demo/web", true, nil},
		{"api", false, []string{"demo/api has no ready pod"}},
		{"external", false, []string{"cannot be forwarded: ExternalName"}},
		{"alias", false, []string{"cannot be forwarded: ExternalName", "restart kubefwd with --relay"}},
		{"stats", false, []string{"cannot create the relay", "pods in the relay's namespace"}},
		{"db.demo", false, []string{"demo/db is paused", "resume_service"}},
		{"cache", false, []string{"3 connection(s) could not be carried, the last: tunnel to pod demo/cache-1: 403 Forbidden", "3 of 5 tunnel dials failed"}},
		{"orders", false, []string{"demo/orders has ready pods that connections cannot reach: retrying in 2 s", "refresh demo/orders"}},
		{"stock", false, []string{"demo/stock is refused by the API server", "pods/portforward in namespace demo"}},
		{"web.payments", false, []string{"namespace payments is not forwarded", "add_namespaces with payments"}},
		{"locked/web", false, []string{"may not list Services in namespace locked", "RBAC"}},
		{"nothing", false, []string{"no forwarded Service is named nothing"}},
		{"mine", false, []string{"the name mine is not in the hosts file: the hosts file maps it itself"}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			d := diagnose(at, tc.service)
			if d.Healthy != tc.healthy || d.Findings == nil {
				t.Fatalf("healthy %v, findings %+v", d.Healthy, d.Findings)
			}
			var text strings.Builder
			for _, f := range d.Findings {
				if f.Problem == "" || f.Fix == "" {
					t.Errorf("a finding without a problem or a fix: %+v", f)
				}
				text.WriteString(f.Problem + " | " + f.Fix + "\n")
			}
			rest := text.String()
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("findings lack %q (in order):\n%s", w, text.String())
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// A hosts file kubefwd cannot write makes every forwarded Service's names
// suspect: diagnose says so even when the forward itself is fine.
func TestDiagnoseHostsError(t *testing.T) {
	st := api.Status{
		Forwards: []api.Forward{{Context: "dev", Namespace: "demo", Service: "web", State: api.StateActive, Address: "127.1.0.1",
			Names: []string{"web"}, Ports: []api.Port{{Port: 80, Local: 80}}}},
		HostsError: "write hosts file /etc/hosts: read-only file system",
	}
	d := diagnose(st, "web")
	if d.Healthy || len(d.Findings) != 1 || !strings.Contains(d.Findings[0].Problem, "read-only file system") {
		t.Errorf("diagnose with a hosts error: %+v", d)
	}
}
