package kube_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefwd/kubefwd/internal/kube"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// Preflight says exactly which permission is missing in which namespace.
func TestPreflightNamesMissingPermissions(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	for _, ns := range []string{"rbac-a", "rbac-b"} {
		if err := c.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	// jane may watch Services in rbac-a, and nothing else.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "services", Namespace: "rbac-a"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list", "watch"}}},
	}
	if _, err := c.Clientset.RbacV1().Roles("rbac-a").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "jane", Namespace: "rbac-a"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "services"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "jane", APIGroup: "rbac.authorization.k8s.io"}},
	}
	if _, err := c.Clientset.RbacV1().RoleBindings("rbac-a").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	flags := &kube.Flags{Kubeconfig: c.Kubeconfig}
	flags.Impersonate("jane")
	targets, err := kube.Resolve(kube.Request{Flags: flags, Contexts: []string{c.Context}, Namespaces: []string{"rbac-a", "rbac-b"}})
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver's RBAC authorizer learns of new bindings through its
	// own informers: wait until it has.
	var perr *kube.PreflightError
	err = cluster.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		err := kube.Preflight(ctx, targets[0])
		if !errors.As(err, &perr) {
			return false, fmt.Errorf("Preflight = %v, want a PreflightError", err)
		}
		return len(perr.Missing["rbac-a"]) < len(kube.Needed), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = perr
	if got := len(perr.Missing["rbac-a"]); got != len(kube.Needed)-2 {
		t.Errorf("rbac-a misses %d permissions, want %d: %v", got, len(kube.Needed)-2, perr.Missing["rbac-a"])
	}
	if got := len(perr.Missing["rbac-b"]); got != len(kube.Needed) {
		t.Errorf("rbac-b misses %d permissions, want all %d", got, len(kube.Needed))
	}
	msg := err.Error()
	for _, want := range []string{c.Context, "namespace rbac-a: not allowed to", "create pods/portforward", "watch endpointslices.discovery.k8s.io"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "rbac-a: not allowed to list services") {
		t.Errorf("message lists a permission jane has:\n%s", msg)
	}

	// The admin may do everything.
	flags.Impersonate("")
	targets, err = kube.Resolve(kube.Request{Flags: flags, Contexts: []string{c.Context}, Namespaces: []string{"rbac-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Preflight(ctx, targets[0]); err != nil {
		t.Errorf("admin preflight: %v", err)
	}
}

// Without -n, a context forwards its own namespace.
func TestResolveUsesContextNamespace(t *testing.T) {
	c := clustertest.Shared(t)
	flags := &kube.Flags{Kubeconfig: c.Kubeconfig}
	targets, err := kube.Resolve(kube.Request{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || targets[0].Context != c.Context || len(targets[0].Namespaces) != 1 || targets[0].Namespaces[0] != "default" {
		t.Fatalf("targets = %+v", targets)
	}
}
