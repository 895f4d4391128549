package kube

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
)

// Flags are kubectl's client flags (--as, --request-timeout, --user,
// --server, …), which work as they do in kubectl. The kubeconfig, context
// and namespace flags are not among them: kubefwd has its own (upstream's
// -c, repeatable -x and -n).
//
// They are bound with clientcmd's own flag names and help. kubectl's set
// (cli-runtime's ConfigFlags) would bring its resource builder and with it
// all of kustomize, which imports package plugin: a binary that imports it
// is linked dynamically with every symbol exported (17 MB of dynamic symbol
// tables alone; with client-go's typed clients, see internal/kubeapi, the
// stripped binary was 88 MB instead of 24).
type Flags struct {
	// Kubeconfig is the file to read; empty: $KUBECONFIG or ~/.kube/config.
	Kubeconfig string

	overrides   clientcmd.ConfigOverrides
	asUserExtra []string
	cacheDir    string
}

// AddFlags binds kubectl's client flags to f.
func (k *Flags) AddFlags(f *pflag.FlagSet) {
	auth := clientcmd.RecommendedAuthOverrideFlags("")
	auth.Username.LongName, auth.Password.LongName = "", "" // kubectl has dropped basic auth
	auth.Impersonate.Description = "Username to impersonate for the operation. User could be a regular user or a service account in a namespace."
	clientcmd.BindAuthInfoFlags(&k.overrides.AuthInfo, f, auth)
	f.StringArrayVar(&k.asUserExtra, "as-user-extra", nil, "User extras to impersonate for the operation, this flag can be repeated to specify multiple values for the same key.")
	cluster := clientcmd.RecommendedClusterOverrideFlags("")
	cluster.APIServer.ShortName = "s"
	clientcmd.BindClusterFlags(&k.overrides.ClusterInfo, f, cluster)
	context := clientcmd.RecommendedContextOverrideFlags("")
	context.Namespace.LongName = "" // kubefwd's own -n
	clientcmd.BindContextFlags(&k.overrides.Context, f, context)
	f.StringVar(&k.overrides.Timeout, clientcmd.FlagTimeout, "0", "The length of time to wait before giving up on a single server request. Non-zero values should contain a corresponding time unit (e.g. 1s, 2m, 3h). A value of zero means don't timeout requests.")
	// kubectl's discovery cache: kubefwd does no discovery. Still accepted,
	// so that a command line written for kubectl keeps working.
	f.StringVar(&k.cacheDir, "cache-dir", "", "")
	_ = f.MarkDeprecated("cache-dir", "kubefwd keeps no discovery cache; the flag has no effect")
}

// Validate checks what the flags can tell on their own.
func (k *Flags) Validate() error {
	for _, kv := range k.asUserExtra {
		if key, _, ok := strings.Cut(kv, "="); !ok || key == "" {
			return fmt.Errorf("--as-user-extra %q: want KEY=VALUE", kv)
		}
	}
	return nil
}

// Loader reads the kubeconfig with the flags applied, for context (empty:
// the kubeconfig's current one). Each call reads the files afresh.
func (k *Flags) Loader(context string) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.Kubeconfig
	overrides := k.overrides // copied: each context gets its own
	overrides.ClusterDefaults = clientcmd.ClusterDefaults
	overrides.CurrentContext = context
	if len(k.asUserExtra) > 0 {
		overrides.AuthInfo.ImpersonateUserExtra = map[string][]string{}
		for _, kv := range k.asUserExtra {
			key, value, _ := strings.Cut(kv, "=") // checked by Validate
			overrides.AuthInfo.ImpersonateUserExtra[key] = append(overrides.AuthInfo.ImpersonateUserExtra[key], value)
		}
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &overrides)
}

// Impersonate sets --as (for tests that act as another user).
func (k *Flags) Impersonate(user string) { k.overrides.AuthInfo.Impersonate = user }
