package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A kubeconfig whose only context points at a port where nothing listens.
const deadKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: dead
  context: {cluster: dead, user: u, namespace: ns1}
current-context: dead
`

// Bad input ends in one sentence naming it, a fitting exit code, and the
// hosts file untouched.
func TestSvcBadInput(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(deadKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	hostsPath := filepath.Join(dir, "hosts")
	original := "127.0.0.1 localhost\n# mine\n"
	if err := os.WriteFile(hostsPath, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	brokenKubeconfig := filepath.Join(dir, "broken-kubeconfig")
	if err := os.WriteFile(brokenKubeconfig, []byte("apiVersion: v1\nclusters: [[[\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badConf := filepath.Join(dir, "fwd.yml")
	if err := os.WriteFile(badConf, []byte("baseIP: 127.1.27.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badNamespaces := filepath.Join(dir, "namespaces")
	if err := os.WriteFile(badNamespaces, []byte("demo\nnot valid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherContext := filepath.Join(dir, "other-namespaces")
	if err := os.WriteFile(otherContext, []byte("prod/payments\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"svc", "-c", kubeconfig, "--hosts-path", hostsPath, "--state-file", filepath.Join(dir, "state.json")}
	for _, tc := range []struct {
		args     []string
		code     int
		mentions string
	}{
		{[]string{"-m", "80"}, ExitUsage, `--mapping "80"`},
		{[]string{"-m", "80:99999"}, ExitUsage, `--mapping "80:99999"`},
		{[]string{"-m", "80:81", "-m", "80:82"}, ExitUsage, "mapped twice"},
		{[]string{"-m", "80:9000", "-m", "443:9000"}, ExitUsage, "--mapping: ports 80 and 443 are both mapped to local port 9000"},
		{[]string{"-r", "api:10.0.0.1"}, ExitUsage, "outside 127.0.0.0/8"},
		{[]string{"-r", "api"}, ExitUsage, `--reserve "api"`},
		{[]string{"-r", "a:127.1.1.1", "-r", "b:127.1.1.1"}, ExitUsage, "reserved for both"},
		{[]string{"-z", badConf}, ExitUsage, `unknown field "baseIP"`},
		{[]string{"-z", filepath.Join(dir, "missing.yml")}, ExitUsage, "missing.yml"},
		{[]string{"-l", "app in (a"}, ExitUsage, "--selector"},
		{[]string{"-f", "a~b"}, ExitUsage, "--field-selector"},
		{[]string{"-x", "nope"}, ExitUsage, `context "nope" is not in the kubeconfig (it has: dead)`},
		{[]string{"-n", "Bad_NS"}, ExitUsage, `namespace "Bad_NS"`},
		{[]string{"-A", "-n", "x"}, ExitUsage, "cannot be combined"},
		{[]string{"--namespaces-file", badNamespaces}, ExitUsage, "namespaces: line 2: namespace \"not valid\""},
		{[]string{"--namespaces-file", otherContext}, ExitUsage, `context "prod" is not forwarded`},
		{[]string{"--namespaces-file", badNamespaces, "-n", "x"}, ExitUsage, "--namespaces-file cannot be combined"},
		{[]string{"--idle", "-A"}, ExitUsage, "--idle starts with no namespace"},
		{[]string{"--instance", "My Instance"}, ExitUsage, `--instance "My Instance"`},
		{[]string{"--helper", "maybe"}, ExitUsage, `--helper "maybe": want auto, always or never`},
		{[]string{"--relay-namespace", "tools"}, ExitUsage, "configure the relay: add --relay"},
		{[]string{"--relay-image", "x/y:1"}, ExitUsage, "configure the relay: add --relay"},
		{[]string{"--relay", "--relay-namespace", "Bad_NS"}, ExitUsage, `--relay-namespace "Bad_NS"`},
		{[]string{"--relay", "--relay-image", " "}, ExitUsage, "--relay-image is empty"},
		{[]string{"--idle"}, ExitNoCluster, "cannot reach the API server"},
		{[]string{"--hosts-path", filepath.Join(dir, "no", "hosts")}, ExitUsage, "--hosts-path"},
		{[]string{"-c", brokenKubeconfig}, ExitUsage, "cannot read kubeconfig"},
		{nil, ExitNoCluster, "cannot reach the API server"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var out, errb strings.Builder
			code := Main(ctx, append(append([]string{}, base...), tc.args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			last := lastLine(errb.String())
			if !strings.HasPrefix(last, "kubefwd: ") || !strings.Contains(last, tc.mentions) {
				t.Errorf("last line %q does not name %q", last, tc.mentions)
			}
			if data, _ := os.ReadFile(hostsPath); string(data) != original {
				t.Errorf("hosts file changed:\n%s", data)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestDefaultToSvc(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"-n x", "svc -n x"},
		{"version", "version"},
		{"--help", "--help"},
		{"-n x --help", "-n x --help"},
		{"", ""},
	} {
		got := strings.Join(defaultToSvc(strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("defaultToSvc(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// validate judges the flags alone, without files, terminal or cluster:
// each mistake is one usage error (exit 2) naming the flag.
func TestSvcValidate(t *testing.T) {
	ok := func() svcOptions { return svcOptions{helperMode: "auto"} }
	for _, tc := range []struct {
		name     string
		change   func(*svcOptions)
		mentions string // "" : valid
	}{
		{"defaults", func(*svcOptions) {}, ""},
		{"everything valid", func(o *svcOptions) {
			o.selector, o.fieldSelector = "app=web,tier!=db", "metadata.name=web"
			o.mappings, o.reserves = []string{"80:8080", "443:8443"}, []string{"web:127.1.28.1", "api.demo:127.1.28.2"}
			o.namespaces, o.helperMode, o.instance = []string{"demo"}, "never", "dev-1"
		}, ""},
		{"namespaces file alone", func(o *svcOptions) { o.nsFile = "ns.txt" }, ""},
		{"idle alone", func(o *svcOptions) { o.idle = true }, ""},
		{"bad selector", func(o *svcOptions) { o.selector = "app in (a" }, `--selector "app in (a"`},
		{"bad field selector", func(o *svcOptions) { o.fieldSelector = "a~b" }, `--field-selector "a~b"`},
		{"mapping without local port", func(o *svcOptions) { o.mappings = []string{"80"} }, `--mapping "80"`},
		{"mapping out of range", func(o *svcOptions) { o.mappings = []string{"80:99999"} }, `--mapping "80:99999"`},
		{"port mapped twice", func(o *svcOptions) { o.mappings = []string{"80:81", "80:82"} }, "mapped twice"},
		{"two ports onto one", func(o *svcOptions) { o.mappings = []string{"80:9000", "443:9000"} }, "both mapped to local port 9000"},
		{"reserve without address", func(o *svcOptions) { o.reserves = []string{"api"} }, `--reserve "api"`},
		{"reserve off loopback", func(o *svcOptions) { o.reserves = []string{"api:10.0.0.1"} }, "outside 127.0.0.0/8"},
		{"one address reserved twice", func(o *svcOptions) { o.reserves = []string{"a:127.1.1.1", "b:127.1.1.1"} }, "reserved for both"},
		{"namespaces file and -n", func(o *svcOptions) { o.nsFile, o.namespaces = "ns.txt", []string{"x"} }, "--namespaces-file cannot be combined"},
		{"namespaces file and -A", func(o *svcOptions) { o.nsFile, o.allNamespaces = "ns.txt", true }, "--namespaces-file cannot be combined"},
		{"namespaces file and --idle", func(o *svcOptions) { o.nsFile, o.idle = "ns.txt", true }, "--namespaces-file cannot be combined"},
		{"idle and -A", func(o *svcOptions) { o.idle, o.allNamespaces = true, true }, "--idle starts with no namespace"},
		{"idle and -n", func(o *svcOptions) { o.idle, o.namespaces = true, []string{"x"} }, "--idle starts with no namespace"},
		{"unknown helper mode", func(o *svcOptions) { o.helperMode = "maybe" }, `--helper "maybe": want auto, always or never`},
		{"instance not a DNS label", func(o *svcOptions) { o.instance = "My Instance" }, `--instance "My Instance"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok()
			tc.change(&o)
			err := o.validate()
			if tc.mentions == "" {
				if err != nil {
					t.Fatalf("valid flags refused: %v", err)
				}
				return
			}
			var usage UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("got %v (%T), want a usage error", err, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.mentions) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q", msg, tc.mentions)
			}
		})
	}
}
