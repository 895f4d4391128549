package names

import (
	"slices"
	"strings"
	"testing"
)

func TestService(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scope Scope
		svc   string
		want  []string
	}{
		{
			name:  "first namespace of first context",
			scope: Scope{Context: "kind-dev", Namespace: "default"},
			svc:   "api",
			want: []string{"api", "api.default", "api.default.svc", "api.default.svc.cluster.local",
				"api.default.kind-dev", "api.default.svc.kind-dev", "api.default.svc.cluster.kind-dev"},
		},
		{
			name:  "second namespace of first context",
			scope: Scope{Context: "kind-dev", Namespace: "demo2", NamespaceIndex: 1},
			svc:   "web",
			want: []string{"web.demo2", "web.demo2.svc", "web.demo2.svc.cluster.local",
				"web.demo2.kind-dev", "web.demo2.svc.kind-dev", "web.demo2.svc.cluster.kind-dev"},
		},
		{
			name:  "first namespace of second context keeps svc.ctx",
			scope: Scope{Context: "prod", ContextIndex: 1, Namespace: "default"},
			svc:   "api",
			want:  []string{"api.prod", "api.default.prod", "api.default.svc.prod", "api.default.svc.cluster.prod"},
		},
		{
			name:  "second namespace of second context",
			scope: Scope{Context: "prod", ContextIndex: 1, Namespace: "pay", NamespaceIndex: 1},
			svc:   "db",
			want:  []string{"db.pay.prod", "db.pay.svc.prod", "db.pay.svc.cluster.prod"},
		},
		{
			name:  "domain",
			scope: Scope{Context: "c", Namespace: "ns", Domain: "example.test"},
			svc:   "api",
			want: []string{"api", "api.example.test", "api.ns", "api.ns.svc", "api.ns.svc.cluster.local",
				"api.ns.svc.cluster.example.test", "api.ns.c", "api.ns.svc.c", "api.ns.svc.cluster.c"},
		},
		{
			name:  "EKS ARN context is sanitised",
			scope: Scope{Context: "arn:aws:eks:eu-west-1:123456789012:cluster/My Cluster", ContextIndex: 1, Namespace: "default"},
			svc:   "api",
			want: []string{"api.arn-aws-eks-eu-west-1-123456789012-cluster-my-cluster",
				"api.default.arn-aws-eks-eu-west-1-123456789012-cluster-my-cluster",
				"api.default.svc.arn-aws-eks-eu-west-1-123456789012-cluster-my-cluster",
				"api.default.svc.cluster.arn-aws-eks-eu-west-1-123456789012-cluster-my-cluster"},
		},
		{
			name:  "context with nothing usable gets no context names",
			scope: Scope{Context: "@@@", ContextIndex: 1, Namespace: "default", NamespaceIndex: 1},
			svc:   "api",
			want:  nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Service(tc.scope, tc.svc)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Service() =\n  %v\nwant\n  %v", got, tc.want)
			}
		})
	}
}

func TestPod(t *testing.T) {
	got := Pod(Scope{Context: "kind", Namespace: "demo"}, "db-0", "db")
	want := []string{"db-0.db", "db-0.db.demo", "db-0.db.demo.svc", "db-0.db.demo.svc.cluster.local",
		"db-0.db.demo.kind", "db-0.db.demo.svc.kind", "db-0.db.demo.svc.cluster.kind"}
	if !slices.Equal(got, want) {
		t.Errorf("Pod() = %v, want %v", got, want)
	}
}

func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"Kind-Dev":                     "kind-dev",
		"a b\tc\nd#e":                  "a-b-c-d-e",
		"--x--":                        "x",
		"user@cluster:443/path":        "user-cluster-443-path",
		"":                             "",
		"日本":                           "",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + ".b": strings.Repeat("a", 62),
	} {
		if got := Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever comes in, every name out is a valid DNS name that cannot break a
// hosts file line.
func FuzzService(f *testing.F) {
	f.Add("kind-dev", "default", "api", "", 0, 0)
	f.Add("arn:aws:eks:x:1:cluster/a b", "ns\n127.0.0.1 evil", "svc#x", "ex.com", 1, 2)
	f.Fuzz(func(t *testing.T, ctx, ns, svc, domain string, ci, ni int) {
		for _, n := range append(Service(Scope{Context: ctx, ContextIndex: ci, Namespace: ns, NamespaceIndex: ni, Domain: domain}, svc),
			Pod(Scope{Context: ctx, ContextIndex: ci, Namespace: ns, NamespaceIndex: ni, Domain: domain}, svc, ns)...) {
			if !Valid(n) || strings.ContainsAny(n, " \t\r\n#") {
				t.Fatalf("invalid name %q", n)
			}
		}
	})
}
