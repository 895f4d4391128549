package names

import (
	"strings"
	"testing"
)

func TestCheckHostname(t *testing.T) {
	for _, ok := range []string{"web", "web.demo", "web.demo.svc.cluster.local", "db-0.db", "A1", "web.demo.kwok-prod",
		strings.Repeat("a", 63), strings.Repeat("a.", 126) + "a"} {
		if err := CheckHostname(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a b", "a\tb", "a\nb", "a#b", "-a", "a-", "a_b", "wéb",
		"localhost", "LOCALHOST", "x.localhost", "x.LocalHost", "a/b", strings.Repeat("a", 64), strings.Repeat("a.", 127) + "a"} {
		if err := CheckHostname(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.ContainsAny(err.Error(), "\n\r\t") {
			t.Errorf("%q: the error carries a control character: %q", bad, err)
		}
	}
}

// Every name Service and Pod build passes the check, so the helper never
// refuses a name kubefwd itself made for a reason of form.
func FuzzCheckHostnameAgreesWithService(f *testing.F) {
	f.Add("web", "demo", "kind-dev", "example.dev")
	f.Add("localhost", "localhost", "arn:aws:eks:x", "")
	f.Fuzz(func(t *testing.T, svc, ns, ctx, domain string) {
		for _, n := range Service(Scope{Context: ctx, Namespace: ns, Domain: domain}, svc) {
			if err := CheckHostname(n); err != nil && !IsLocalhost(n) {
				t.Fatalf("Service made %q, which the check refuses: %v", n, err)
			}
			if strings.ContainsAny(n, " \t\r\n#") {
				t.Fatalf("unsafe name %q", n)
			}
		}
	})
}
