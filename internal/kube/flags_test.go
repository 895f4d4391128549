package kube

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const testKubeconfig = `apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: dev, user: dev, namespace: team}
- name: prod
  context: {cluster: prod, user: prod}
clusters:
- name: dev
  cluster: {server: "https://dev.example:6443"}
- name: prod
  cluster: {server: "https://prod.example:6443"}
users:
- name: dev
  user: {token: dev-token}
- name: prod
  user: {token: prod-token}
`

func parsedFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &Flags{Kubeconfig: path}
	f := pflag.NewFlagSet("svc", pflag.ContinueOnError)
	k.AddFlags(f)
	if err := f.Parse(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return k
}

// kubectl's client flags reach the client configuration as in kubectl.
func TestFlagsApply(t *testing.T) {
	k := parsedFlags(t, "--as", "jane", "--as-group", "dev", "--as-group", "ops", "--as-uid", "42",
		"--as-user-extra", "scope=a", "--as-user-extra", "scope=b=c", "--request-timeout", "7s",
		"-s", "https://other.example:8443", "--tls-server-name", "api.internal", "--insecure-skip-tls-verify",
		"--token", "flag-token", "--disable-compression", "--proxy-url", "http://proxy.example:3128")
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err := k.Loader("").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	imp := cfg.Impersonate
	if imp.UserName != "jane" || !slices.Equal(imp.Groups, []string{"dev", "ops"}) || imp.UID != "42" ||
		!slices.Equal(imp.Extra["scope"], []string{"a", "b=c"}) {
		t.Errorf("impersonation = %+v", imp)
	}
	if cfg.Timeout != 7*time.Second {
		t.Errorf("timeout = %s", cfg.Timeout)
	}
	if cfg.Host != "https://other.example:8443" || cfg.ServerName != "api.internal" || !cfg.Insecure {
		t.Errorf("host %q, server name %q, insecure %v", cfg.Host, cfg.ServerName, cfg.Insecure)
	}
	if cfg.BearerToken != "flag-token" || !cfg.DisableCompression || cfg.Proxy == nil {
		t.Errorf("token %q, compression disabled %v, proxy set %v", cfg.BearerToken, cfg.DisableCompression, cfg.Proxy != nil)
	}
}

// Each context is read on its own, with its own namespace, and --user and
// --cluster pick another entry of the kubeconfig for it.
func TestFlagsPerContext(t *testing.T) {
	k := parsedFlags(t)
	for ctx, want := range map[string]struct{ host, token, ns string }{
		"":     {"https://dev.example:6443", "dev-token", "team"},
		"dev":  {"https://dev.example:6443", "dev-token", "team"},
		"prod": {"https://prod.example:6443", "prod-token", "default"},
	} {
		loader := k.Loader(ctx)
		cfg, err := loader.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		ns, _, err := loader.Namespace()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != want.host || cfg.BearerToken != want.token || ns != want.ns {
			t.Errorf("context %q: host %q, token %q, namespace %q; want %+v", ctx, cfg.Host, cfg.BearerToken, ns, want)
		}
	}
	k = parsedFlags(t, "--user", "prod", "--cluster", "prod")
	cfg, err := k.Loader("dev").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://prod.example:6443" || cfg.BearerToken != "prod-token" {
		t.Errorf("--user prod --cluster prod: host %q, token %q", cfg.Host, cfg.BearerToken)
	}
}

// The kubeconfig, context and namespace flags are kubefwd's own, not
// kubectl's; --cache-dir is accepted and does nothing.
func TestFlagsLeaveKubefwdsOwn(t *testing.T) {
	f := pflag.NewFlagSet("svc", pflag.ContinueOnError)
	(&Flags{}).AddFlags(f)
	for _, name := range []string{"kubeconfig", "context", "namespace", "username", "password"} {
		if f.Lookup(name) != nil {
			t.Errorf("--%s is bound", name)
		}
	}
	if f.ShorthandLookup("n") != nil {
		t.Error("-n is bound")
	}
	if f.ShorthandLookup("s") == nil || f.ShorthandLookup("s").Name != "server" {
		t.Error("-s is not --server")
	}
	k := parsedFlags(t, "--cache-dir", "/nowhere")
	if _, err := k.Loader("").ClientConfig(); err != nil {
		t.Errorf("--cache-dir: %v", err)
	}
}

func TestFlagsValidate(t *testing.T) {
	for _, bad := range []string{"scope", "=a", ""} {
		k := parsedFlags(t, "--as-user-extra", bad)
		err := k.Validate()
		if err == nil || !strings.Contains(err.Error(), "--as-user-extra") || !strings.Contains(err.Error(), "KEY=VALUE") {
			t.Errorf("--as-user-extra %q: %v", bad, err)
		}
	}
	k := parsedFlags(t, "--request-timeout", "soon")
	if _, err := k.Loader("").ClientConfig(); err == nil {
		t.Error("--request-timeout soon was accepted")
	}
}
