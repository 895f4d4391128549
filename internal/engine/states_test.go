package engine_test

import (
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// forwardOf is the status of the Service named service (not a pod entry).
func forwardOf(f *fwd, service string) api.Forward {
	for _, fs := range f.engine.Status().Forwards {
		if fs.Service == service && fs.Pod == "" {
			return fs
		}
	}
	return api.Forward{}
}

// deadBackend makes kwok carry the streams to pod's ports to a port
// nothing listens on, as when the pod's process died behind a ready
// endpoint; restore points them back.
func deadBackend(t *testing.T, c *cluster.Cluster, ns, pod string) (restore func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := int64(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	pfs := c.Dynamic.Resource(cluster.PortForwardGVR).Namespace(ns)
	pf, err := pfs.Get(t.Context(), pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forwards, _, _ := unstructured.NestedSlice(pf.Object, "spec", "forwards")
	setTarget := func(port func(i int, old int64) int64) {
		t.Helper()
		cur, err := pfs.Get(t.Context(), pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fws, _, _ := unstructured.NestedSlice(cur.Object, "spec", "forwards")
		for i, fw := range fws {
			old, _, _ := unstructured.NestedInt64(fw.(map[string]any), "target", "port")
			if err := unstructured.SetNestedField(fw.(map[string]any), port(i, old), "target", "port"); err != nil {
				t.Fatal(err)
			}
		}
		if err := unstructured.SetNestedSlice(cur.Object, fws, "spec", "forwards"); err != nil {
			t.Fatal(err)
		}
		if _, err := pfs.Update(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setTarget(func(int, int64) int64 { return deadPort })
	return func() {
		setTarget(func(i int, _ int64) int64 {
			port, _, _ := unstructured.NestedInt64(forwards[i].(map[string]any), "target", "port")
			return port
		})
	}
}

// While connections cannot get through to a Service's only pod (kwok
// carries its streams to a dead port), the forward is not "active": it is
// unreachable, "retrying in N s" with the cause while a connection waits
// to try again; once the pod answers, the waiting connection gets through
// and the forward is active again.
func TestUnreachablePodShowsRetrying(t *testing.T) {
	c := clustertest.Shared(t)
	pods, err := c.CreateApp(t.Context(), "unreach", "web", 1, 80)
	if err != nil {
		t.Fatal(err)
	}
	f := startEngine(t, c, fwdOptions{namespaces: []string{"unreach"}, wait: 40 * time.Second})
	f.waitName(t, "web")
	if _, err := f.get(t, "web", 80); err != nil {
		t.Fatal(err)
	}
	sub := f.engine.Subscribe()
	defer sub.Close()
	restore := deadBackend(t, c, "unreach", pods[0])

	// Connections one after the other until one waits (kwok takes a moment
	// to apply the new target).
	var inflight sync.WaitGroup
	defer inflight.Wait()
	results := make(chan error, 1)
	launch := func() {
		inflight.Go(func() {
			_, err := f.get(t, "web", 80)
			results <- err
		})
	}
	launch()
	retrying := regexp.MustCompile(`^retrying (in [12] s|now): pod unreach/` + regexp.QuoteMeta(pods[0]) + ` port 8080: `)
	var web api.Forward
	err = cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		select {
		case <-results:
			launch()
		default:
		}
		web = forwardOf(f, "web")
		return web.State == api.StateUnreachable && retrying.MatchString(web.Reason), nil
	})
	if err != nil {
		t.Fatalf("web never said it was retrying and why: %+v", web)
	}
	t.Logf("%s: %s", web.State, web.Reason)

	restore()
	err = cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		web = forwardOf(f, "web")
		return web.State == api.StateActive, nil
	})
	if err != nil {
		t.Fatalf("web did not become active once its pod answered: %+v", web)
	}
	// The connection that was waiting got through.
	select {
	case err := <-results:
		if err != nil {
			t.Errorf("the connection waiting while the pod was unreachable: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the waiting connection never finished")
	}
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=unreach/web-") {
		t.Errorf("after the pod came back: %q, %v", body, err)
	}
	// Followers heard it begin and end, once each.
	expectStates(t, sub, "web", api.StateUnreachable, api.StateActive)
}

// expectStates reads the forward events of service so far and wants
// exactly the states given, in order.
func expectStates(t *testing.T, sub api.Subscription, service string, want ...string) {
	t.Helper()
	var got []string
	for {
		select {
		case ev := <-sub.Events():
			if ev.Type == api.EventForward && ev.Service == service {
				got = append(got, ev.State)
				t.Logf("event: %s %s: %s (%s)", ev.Service, ev.State, ev.Reason, ev.Message)
			}
			continue
		case <-time.After(time.Second):
		}
		break
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("forward events of %s: %v, want %v", service, got, want)
	}
}

// limitedUser makes a ServiceAccount in ns bound to a Role with everything
// kubefwd needs (kube.Needed), and a kubeconfig (context "limited") acting
// as it. set swaps the Role's port-forward permission in and out.
func limitedUser(t *testing.T, c *cluster.Cluster, ns string) (kubeconfig string, allowPortForward func(bool)) {
	t.Helper()
	ctx := t.Context()
	rules := func(portForward bool) []rbacv1.PolicyRule {
		r := []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		}
		if portForward {
			r = append(r, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"get", "create"}})
		}
		return r
	}
	cs := c.Clientset
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kubefwd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "kubefwd"}, Rules: rules(true)}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kubefwd"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "kubefwd"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kubefwd", Namespace: ns}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "kubefwd", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["devcluster"] = &clientcmdapi.Cluster{Server: c.RESTConfig.Host, CertificateAuthorityData: c.RESTConfig.CAData,
		CertificateAuthority: c.RESTConfig.CAFile, InsecureSkipTLSVerify: c.RESTConfig.Insecure}
	cfg.AuthInfos["limited"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["limited"] = &clientcmdapi.Context{Cluster: "devcluster", AuthInfo: "limited", Namespace: ns}
	cfg.CurrentContext = "limited"
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, func(allow bool) {
		t.Helper()
		cur, err := cs.RbacV1().Roles(ns).Get(ctx, "kubefwd", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Rules = rules(allow)
		if _, err := cs.RbacV1().Roles(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// When the API server refuses the port-forward (RBAC: here kubefwd's
// ServiceAccount loses pods/portforward while it runs), the forward says
// "forbidden" and which permission is missing where, and a connection
// fails at once instead of retrying for the whole wait; with the
// permission back, it is active again.
func TestForbiddenPortForwardShowsForbidden(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "forbid", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	kubeconfig, allowPortForward := limitedUser(t, c, "forbid")
	const wait = 30 * time.Second
	f := startEngine(t, c, fwdOptions{kubeconfig: kubeconfig, contexts: []string{"limited"}, namespaces: []string{"forbid"}, wait: wait})
	f.waitName(t, "web")
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=forbid/web-") {
		t.Fatalf("with the permission: %q, %v", body, err)
	}

	sub := f.engine.Subscribe()
	defer sub.Close()
	allowPortForward(false)
	f.engine.Refresh() // the open tunnel was allowed when it was made
	var web api.Forward
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		start := time.Now()
		if _, err := f.get(t, "web", 80); err == nil {
			// RBAC not applied yet, and the tunnel just opened was allowed
			// when it was made: drop it again.
			f.engine.Refresh()
			return false, nil
		} else if took := time.Since(start); took > wait/2 {
			t.Errorf("a refused connection took %s to fail (the wait for a pod is %s): it should not be retried", took.Round(time.Millisecond), wait)
		}
		web = forwardOf(f, "web")
		return web.State == api.StateForbidden, nil
	})
	if err != nil {
		t.Fatalf("web never said forbidden: %+v", web)
	}
	t.Logf("%s: %s", web.State, web.Reason)
	if !strings.HasPrefix(web.Reason, "kubefwd cannot port-forward in namespace forbid: RBAC denies pods/portforward (it needs get and create); the API server said: ") ||
		!strings.Contains(web.Reason, "system:serviceaccount:forbid:kubefwd") {
		t.Errorf("reason = %q, want the permission, the namespace and who was refused", web.Reason)
	}

	allowPortForward(true)
	err = cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		_, err := f.get(t, "web", 80)
		web = forwardOf(f, "web")
		return err == nil && web.State == api.StateActive, nil
	})
	if err != nil {
		t.Fatalf("web not active with the permission back: %+v", web)
	}
	expectStates(t, sub, "web", api.StateForbidden, api.StateActive)
}
