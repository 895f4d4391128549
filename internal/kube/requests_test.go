package kube

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		method, url, verb, resource string
	}{
		{"GET", "/api/v1/namespaces/demo/services?limit=500", "list", "services"},
		{"GET", "/api/v1/namespaces/demo/services?watch=true&resourceVersion=5", "watch", "services"},
		{"GET", "/api/v1/services?watch=1", "watch", "services"},
		{"GET", "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices", "list", "endpointslices"},
		{"GET", "/api/v1/namespaces/demo/pods/web-1", "get", "pods"},
		{"GET", "/api/v1/namespaces/demo/pods/web-1/portforward", "get", "pods/portforward"},
		{"POST", "/api/v1/namespaces/demo/pods/web-1/portforward", "create", "pods/portforward"},
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "create", "selfsubjectaccessreviews"},
		{"GET", "/api/v1/namespaces/demo", "get", "namespaces"},
		{"GET", "/api/v1/namespaces", "list", "namespaces"},
		{"GET", "/version", "get", "/version"},
	}
	for _, tt := range tests {
		verb, resource := classify(httptest.NewRequest(tt.method, tt.url, nil))
		if verb != tt.verb || resource != tt.resource {
			t.Errorf("%s %s = %s %s, want %s %s", tt.method, tt.url, verb, resource, tt.verb, tt.resource)
		}
	}
}

func TestRequestsCount(t *testing.T) {
	var r Requests
	rt := r.Wrap(roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil }))
	for _, u := range []string{"/api/v1/namespaces/a/services", "/api/v1/namespaces/b/services", "/api/v1/namespaces/a/services?watch=true"} {
		if _, err := rt.RoundTrip(httptest.NewRequest("GET", u, nil)); err != nil {
			t.Fatal(err)
		}
	}
	got := r.Snapshot()
	want := []RequestCount{{Verb: "list", Resource: "services", Count: 2}, {Verb: "watch", Resource: "services", Count: 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
