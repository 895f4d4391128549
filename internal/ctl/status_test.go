package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/cmdio"
)

// status shows what was left out: ports of a Service and names the hosts
// file did not get, each with why, and a hosts file that cannot be written.
func TestPrintStatusShowsSkips(t *testing.T) {
	var out strings.Builder
	st := api.Status{
		Forwards: []api.Forward{{
			Namespace: "demo", Service: "dns", Address: "127.1.2.3", State: api.StateActive,
			Skipped: []string{"dns-udp (53/UDP): UDP: port-forward carries TCP only"},
		}},
		HostsSkipped: []api.SkippedName{{Name: "dns.localhost", Reason: "reserved"}},
		HostsError:   "write hosts file /etc/hosts: read-only file system",
	}
	printStatus(cmdio.Streams{Out: &out}, st, false)
	for _, want := range []string{"port dns-udp (53/UDP): UDP", "names not written to the hosts file:", "dns.localhost: reserved",
		"the hosts file cannot be written (retrying): write hosts file /etc/hosts: read-only file system"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

// -o wide adds failures, retries, every name, the pods behind the endpoints
// and the last error with its time.
func TestPrintStatusWide(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.Local)
	st := api.Status{Forwards: []api.Forward{{
		Namespace: "demo", Service: "web", Address: "127.1.2.4", State: api.StateActive, Names: []string{"web", "web.demo"},
		Ports: []api.Port{
			{Port: 80, Local: 80, Endpoints: []string{"demo/web-1:8080", "demo/web-2:8080"}, Failed: 2, Retried: 3, LastError: "old", LastErrorAt: &at},
			{Port: 443, Local: 443, Endpoints: []string{"demo/web-1:8443"}, Failed: 1, LastError: "newest", LastErrorAt: ptrTime(at.Add(time.Minute))},
		},
	}}}
	var table, wide strings.Builder
	printStatus(cmdio.Streams{Out: &table}, st, false)
	printStatus(cmdio.Streams{Out: &wide}, st, true)
	if strings.Contains(table.String(), "RETRIED") || strings.Contains(table.String(), "web-1") {
		t.Errorf("the plain table has the wide columns:\n%s", table.String())
	}
	lines := strings.Split(wide.String(), "\n")
	for _, want := range []string{"FAILED", "RETRIED", "NAMES", "PODS", "LAST ERROR"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("wide header lacks %s: %s", want, lines[0])
		}
	}
	fields := strings.Fields(lines[1])
	if got := strings.Join(fields[8:], " "); got != "3 3 web,web.demo web-1,web-2 10:01:00 newest" {
		t.Errorf("wide row ends %q:\n%s", got, wide.String())
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

// A forward that cannot reach its pods reads as a sentence: its state, then
// the retry and its cause, or the RBAC refusal.
func TestPrintStatusUnreachableAndForbidden(t *testing.T) {
	st := api.Status{Forwards: []api.Forward{
		{Namespace: "shop", Service: "orders", Address: "127.1.0.7", State: api.StateUnreachable,
			Reason: "retrying in 2 s: pod shop/orders-1 port 8080: connection refused", Ports: []api.Port{{Port: 80, Local: 80}}},
		{Namespace: "shop", Service: "stock", Address: "127.1.0.8", State: api.StateForbidden,
			Reason: "kubefwd cannot port-forward in namespace shop: RBAC denies pods/portforward (it needs get and create)", Ports: []api.Port{{Port: 80, Local: 80}}},
	}}
	var out strings.Builder
	printStatus(cmdio.Streams{Out: &out}, st, false)
	for _, want := range []string{
		"unreachable: retrying in 2 s: pod shop/orders-1 port 8080: connection refused",
		"forbidden: kubefwd cannot port-forward in namespace shop: RBAC denies pods/portforward (it needs get and create)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
