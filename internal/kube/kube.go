// Package kube turns kubeconfig flags into one client per context and checks,
// before anything is forwarded, that each context can be reached and allows
// what kubefwd needs.
package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/kubefwd/kubefwd/internal/kubeapi"
)

// Target is one context to forward from.
type Target struct {
	Context string // as named in the kubeconfig
	Index   int    // order on the command line; 0 gets the short names
	// Namespaces to forward, in order (the first gets the short names).
	// With AllNamespaces every namespace is forwarded and this holds only
	// the context's own, which gets the short names.
	Namespaces    []string
	AllNamespaces bool
	Config        *rest.Config
	Client        *kubeapi.Client
	// Requests counts what Client asks of the API server.
	Requests *Requests
}

// UsageError is a problem with what the user asked for (a context that does
// not exist, a malformed namespace).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Request is what the command line asked for.
type Request struct {
	Flags         *Flags
	Contexts      []string // empty: the current context
	Namespaces    []string // empty: each context's own namespace
	AllNamespaces bool
	// QPS and Burst for the clients; kubefwd talks little to the API after
	// the initial sync, but that sync should not be throttled.
	QPS   float32
	Burst int
	// Adjust, if set, may change each context's client configuration
	// before any client is built from it (kubefwd under sudo reads the
	// credential files it names as the user, and runs its exec plugins
	// as the user).
	Adjust func(*rest.Config) error
}

// Resolve builds a Target for each requested context. It only reads the
// kubeconfig; nothing is contacted yet.
func Resolve(req Request) ([]Target, error) {
	if req.Flags == nil {
		req.Flags = &Flags{}
	}
	if err := req.Flags.Validate(); err != nil {
		return nil, UsageError{err}
	}
	raw, err := req.Flags.Loader("").RawConfig()
	if err != nil {
		return nil, UsageError{fmt.Errorf("cannot read kubeconfig: %w", err)}
	}
	if len(raw.Contexts) == 0 {
		return nil, UsageError{errors.New("no kubeconfig with contexts found ($KUBECONFIG, ~/.kube/config); pass --kubeconfig")}
	}
	contexts := dedupe(req.Contexts)
	if len(contexts) == 0 {
		if raw.CurrentContext == "" {
			return nil, UsageError{errors.New("the kubeconfig has no current context; name one with --context")}
		}
		contexts = []string{raw.CurrentContext}
	}
	for _, name := range contexts {
		if _, ok := raw.Contexts[name]; !ok {
			return nil, UsageError{fmt.Errorf("context %q is not in the kubeconfig (it has: %s)", name, strings.Join(sortedKeys(raw.Contexts), ", "))}
		}
	}
	namespaces := dedupe(req.Namespaces)
	for _, ns := range namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, UsageError{fmt.Errorf("namespace %q is not a valid name: %s", ns, errs[0])}
		}
	}
	if req.AllNamespaces && len(namespaces) > 0 {
		return nil, UsageError{errors.New("--all-namespaces and --namespace cannot be combined")}
	}

	var targets []Target
	for i, name := range contexts {
		loader := req.Flags.Loader(name)
		cfg, err := loader.ClientConfig()
		if err != nil {
			return nil, UsageError{fmt.Errorf("context %q: %w", name, err)}
		}
		if req.QPS > 0 {
			cfg.QPS, cfg.Burst = req.QPS, req.Burst
		}
		cfg.UserAgent = "kubefwd"
		if req.Adjust != nil {
			if err := req.Adjust(cfg); err != nil {
				return nil, UsageError{fmt.Errorf("context %q: %w", name, err)}
			}
		}
		requests := &Requests{}
		cfg.Wrap(requests.Wrap)
		cfg.Wrap((&OutageRetry{}).Wrap) // outermost: each try is counted
		client, err := kubeapi.New(cfg)
		if err != nil {
			return nil, UsageError{fmt.Errorf("context %q: %w", name, err)}
		}
		t := Target{Context: name, Index: i, Config: cfg, Client: client, Requests: requests, AllNamespaces: req.AllNamespaces}
		if len(namespaces) > 0 {
			t.Namespaces = namespaces
		} else {
			// The context's own namespace: forwarded alone by default, and
			// the one whose Services get the short names under -A.
			ns, _, err := loader.Namespace()
			if err != nil || ns == "" {
				ns = metav1.NamespaceDefault
			}
			t.Namespaces = []string{ns}
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// Check is one permission kubefwd needs.
type Check struct {
	Verb, Group, Resource, Subresource string
}

func (c Check) String() string {
	r := c.Resource
	if c.Group != "" {
		r += "." + c.Group
	}
	if c.Subresource != "" {
		r += "/" + c.Subresource
	}
	return c.Verb + " " + r
}

// Needed is what forwarding uses: Services and EndpointSlices are watched,
// pods are reached through their portforward subresource (GET for the
// WebSocket transport, CREATE for SPDY).
var Needed = []Check{
	{Verb: "list", Resource: "services"},
	{Verb: "watch", Resource: "services"},
	{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"},
	{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices"},
	{Verb: "get", Resource: "pods"},
	{Verb: "get", Resource: "pods", Subresource: "portforward"},
	{Verb: "create", Resource: "pods", Subresource: "portforward"},
}

// PreflightError lists what a context lacks.
type PreflightError struct {
	Context string
	// Unreachable is set when the API server could not be asked at all.
	Unreachable error
	// Missing maps namespace ("" for all namespaces) to the denied checks.
	Missing map[string][]Check
}

func (e *PreflightError) Error() string {
	if e.Unreachable != nil {
		return fmt.Sprintf("context %q: cannot reach the API server: %v", e.Context, e.Unreachable)
	}
	var parts []string
	for _, ns := range sortedKeys(e.Missing) {
		var verbs []string
		for _, c := range e.Missing[ns] {
			verbs = append(verbs, c.String())
		}
		where := "namespace " + ns
		if ns == "" {
			where = "all namespaces"
		}
		parts = append(parts, fmt.Sprintf("%s: not allowed to %s", where, strings.Join(verbs, ", ")))
	}
	return fmt.Sprintf("context %q: %s (ask for these RBAC permissions)", e.Context, strings.Join(parts, "; "))
}

// Preflight asks the API server whether t may do everything in Needed, in
// every namespace it forwards. It returns nil or a *PreflightError.
func Preflight(ctx context.Context, t Target) error {
	if _, err := t.Client.ServerVersion(ctx); err != nil {
		return &PreflightError{Context: t.Context, Unreachable: err}
	}
	namespaces := t.Namespaces
	if t.AllNamespaces {
		namespaces = []string{""}
	}
	perr := &PreflightError{Context: t.Context, Missing: map[string][]Check{}}
	var mu sync.Mutex // guards perr.Missing
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, ns := range namespaces {
		for _, c := range Needed {
			g.Go(func() error {
				allowed, err := t.Client.Allowed(gctx, authorizationv1.ResourceAttributes{
					Namespace: ns, Verb: c.Verb, Group: c.Group, Resource: c.Resource, Subresource: c.Subresource,
				})
				if err != nil {
					return fmt.Errorf("context %q: checking permissions: %w", t.Context, err)
				}
				if !allowed {
					mu.Lock()
					perr.Missing[ns] = append(perr.Missing[ns], c)
					mu.Unlock()
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(perr.Missing) == 0 {
		return nil
	}
	for ns := range perr.Missing {
		slices.SortFunc(perr.Missing[ns], func(a, b Check) int { return strings.Compare(a.String(), b.String()) })
	}
	return perr
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
