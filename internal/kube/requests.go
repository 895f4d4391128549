package kube

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/kubefwd/kubefwd/internal/api"
)

// RequestCount is how many API requests of one kind were made.
type RequestCount = api.RequestCount

// Requests counts a client's API requests by verb and resource, so that
// "watch, don't poll" can be seen in metrics: watches restart, lists happen
// once per informer, and nothing is requested per Service.
type Requests struct {
	mu     sync.Mutex
	counts map[[2]string]int64
}

// Wrap is a rest.Config WrapTransport.
func (r *Requests) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		verb, resource := classify(req)
		r.mu.Lock()
		if r.counts == nil {
			r.counts = map[[2]string]int64{}
		}
		r.counts[[2]string{verb, resource}]++
		r.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

// Snapshot returns the counts, sorted.
func (r *Requests) Snapshot() []RequestCount {
	r.mu.Lock()
	out := make([]RequestCount, 0, len(r.counts))
	for k, n := range r.counts {
		out = append(out, RequestCount{Verb: k[0], Resource: k[1], Count: n})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b RequestCount) int {
		return strings.Compare(a.Resource+" "+a.Verb, b.Resource+" "+b.Verb)
	})
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// classify names a request the way the API server's metrics do: verb
// (list and watch told apart from get) and resource[/subresource].
func classify(req *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	// /api/v1/... or /apis/GROUP/VERSION/...
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method), "/" + strings.Join(parts, "/") // /version, /healthz …
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) != 2 {
		parts = parts[2:] // namespaced resource; /namespaces/NAME alone is the namespace itself
	}
	var name string
	switch len(parts) {
	case 0:
		return strings.ToLower(req.Method), ""
	case 1:
		resource = parts[0]
	case 2:
		resource, name = parts[0], parts[1]
	default:
		resource, name = parts[0]+"/"+parts[2], parts[1]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verb = "watch"
		case name == "":
			verb = "list"
		default:
			verb = "get"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	default:
		verb = strings.ToLower(req.Method)
	}
	return verb, resource
}
