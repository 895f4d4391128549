package helper

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHostilePolicyReason(t *testing.T) {
	p := Policy{MachineNames: func() []string { return []string{"testbox", "testbox.example.org"} }}
	for _, ok := range []string{"web", "app", "dev", "web.demo", "web.demo.svc", "web.demo.svc.cluster.local",
		"web.demo.kwok-prod", "api.default.svc.cluster.kind-dev", "db-0.db.payments", "web.corp", "web.internal", "web.test"} {
		if why := p.Reason(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
	for _, bad := range []struct{ name, want string }{
		{"github.com", "public top-level domain"},
		{"GitHub.COM", "public top-level domain"},
		{"login.microsoftonline.com", ".com is a public"},
		{"foo.co.uk", ".uk is a public"},
		{"x.github.io", ".io is a public"},
		{"web.example.com", "public top-level domain"},
		{"web.demo.dev", ".dev is a public"},
		{"wpad", "wpad and isatap"},
		{"wpad.demo", "wpad and isatap"},
		{"isatap", "wpad and isatap"},
		{"ISATAP.corp", "wpad and isatap"},
		{"testbox", "machine's own name"},
		{"TestBox.example.org", "public top-level domain"},
	} {
		if why := p.Reason(bad.name); !strings.Contains(why, bad.want) || !strings.Contains(why, "--allow-domain") {
			t.Errorf("%q: reason %q, want one with %q and the way to allow it", bad.name, why, bad.want)
		}
	}
	allowed := Policy{AllowDomains: []string{"example.com", "dev", "wpad"}, MachineNames: p.MachineNames}
	for _, ok := range []string{"web.example.com", "example.com", "web.demo.dev", "wpad"} {
		if why := allowed.Reason(ok); why != "" {
			t.Errorf("%q refused under --allow-domain: %s", ok, why)
		}
	}
	for _, bad := range []string{"github.com", "notexample.com", "testbox", "wpad.demo"} {
		if allowed.Reason(bad) == "" {
			t.Errorf("%q published, though no allowed domain covers it", bad)
		}
	}
}

func TestParseAllowDomains(t *testing.T) {
	got, err := ParseAllowDomains([]string{".Dev", "example.com."})
	if err != nil || strings.Join(got, ",") != "dev,example.com" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "localhost", "a b", "x/y", "-x"} {
		if _, err := ParseAllowDomains([]string{bad}); err == nil {
			t.Errorf("--allow-domain %q accepted", bad)
		}
	}
}

func TestSelfNames(t *testing.T) {
	content := "127.0.0.1 localhost\n127.0.1.1 box.lan box # Debian\n::1 ip6-localhost\n10.0.0.1 other\n" +
		"# kubefwd begin u1-x uid=1\n127.0.0.1 planted\n# kubefwd end u1-x\n"
	if got := strings.Join(selfNames([]byte(content)), " "); got != "localhost box.lan box ip6-localhost" {
		t.Fatalf("got %q", got)
	}
}

func TestMachineNamesIncludeTheHostName(t *testing.T) {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.1.1 debian-box.lan debian-box\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := MachineNames(path)()
	short, _, _ := strings.Cut(strings.ToLower(h), ".")
	for _, want := range []string{strings.ToLower(h), short, "debian-box.lan", "debian-box"} {
		if !slices.Contains(got, want) {
			t.Errorf("machine names %v lack %q", got, want)
		}
	}
	if why := (Policy{MachineNames: MachineNames(path)}).Reason(short); why == "" {
		t.Errorf("the machine's own name %q would be published", short)
	}
}
