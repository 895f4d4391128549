package kubeapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kubefwd/kubefwd/internal/kubeapi"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// Every call kubefwd makes, against a real API server: what the typed
// clients would have answered.
func TestCalls(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	client, err := kubeapi.New(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}

	v, err := client.ServerVersion(ctx)
	if err != nil || v.GitVersion == "" || v.Major == "" {
		t.Errorf("ServerVersion = %+v, %v", v, err)
	}

	const ns = "kubeapi-calls"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	list, err := client.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	if !slices.Contains(names, ns) || !slices.Contains(names, "default") {
		t.Errorf("Namespaces = %v", names)
	}

	pods, err := c.CreateApp(ctx, ns, "app", 1, 80)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := client.Pod(ctx, ns, pods[0])
	if err != nil || pod.Name != pods[0] || len(pod.Spec.Containers) == 0 {
		t.Errorf("Pod = %+v, %v", pod, err)
	}
	if _, err := client.Pod(ctx, ns, "nobody"); err == nil {
		t.Error("a pod that does not exist was read")
	}

	allowed, err := client.Allowed(ctx, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "portforward"})
	if err != nil || !allowed {
		t.Errorf("Allowed (admin) = %v, %v", allowed, err)
	}
	cfg := rest.CopyConfig(c.RESTConfig)
	cfg.Impersonate.UserName = "nobody-in-particular"
	nobody, err := kubeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	allowed, err = nobody.Allowed(ctx, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "services"})
	if err != nil || allowed {
		t.Errorf("Allowed (a user without roles) = %v, %v", allowed, err)
	}

	u := client.PortForwardURL(ns, pods[0])
	if want := "/api/v1/namespaces/" + ns + "/pods/" + pods[0] + "/portforward"; u.Path != want {
		t.Errorf("PortForwardURL = %s, want the path %s", u, want)
	}
}

// Informers on the list-watchers see what exists, what changes later
// (through the watch), and only what the selector asks for.
func TestInformers(t *testing.T) {
	c := clustertest.Shared(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client, err := kubeapi.New(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "kubeapi-watch"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	port := []corev1.ServicePort{{Name: "http", Port: 80}}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: ns, Name: "before", Selector: "before", Ports: port}); err != nil {
		t.Fatal(err)
	}

	services := cache.NewSharedIndexInformer(client.Services(ns, func(o *metav1.ListOptions) { o.LabelSelector = "app!=hidden" }), &corev1.Service{}, 0, cache.Indexers{})
	slices := cache.NewSharedIndexInformer(client.EndpointSlices(""), &discoveryv1.EndpointSlice{}, 0, cache.Indexers{})
	go services.RunWithContext(ctx)
	go slices.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), services.HasSynced, slices.HasSynced) {
		t.Fatal("the informers did not sync")
	}
	if _, ok, _ := services.GetStore().GetByKey(ns + "/before"); !ok {
		t.Errorf("the listed Services lack %s/before: %v", ns, services.GetStore().ListKeys())
	}
	if _, ok, _ := slices.GetStore().GetByKey("default/kubernetes"); !ok {
		t.Errorf("the EndpointSlices of all namespaces lack default/kubernetes: %v", slices.GetStore().ListKeys())
	}

	for _, name := range []string{"hidden", "after"} {
		if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: ns, Name: name, Selector: name, Ports: port}); err != nil {
			t.Fatal(err)
		}
	}
	err = cluster.Poll(ctx, 10*time.Second, func(context.Context) (bool, error) {
		_, ok, _ := services.GetStore().GetByKey(ns + "/after")
		return ok, nil
	})
	if err != nil {
		t.Fatalf("a Service created after the sync did not arrive through the watch: %v", services.GetStore().ListKeys())
	}
	if _, ok, _ := services.GetStore().GetByKey(ns + "/hidden"); ok {
		t.Error("a Service the label selector leaves out arrived")
	}
}

// Lists are asked for in protobuf, as kubectl asks for built-in types, with
// JSON acceptable: a server (or proxy) answering JSON is understood.
func TestAsksForProtobufAcceptsJSON(t *testing.T) {
	var accept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"NamespaceList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"demo"}}]}`)
	}))
	defer srv.Close()
	client, err := kubeapi.New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	list, err := client.Namespaces(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(accept, "application/vnd.kubernetes.protobuf") || !strings.Contains(accept, "application/json") {
		t.Errorf("Accept = %q, want protobuf first and JSON too", accept)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "demo" {
		t.Errorf("namespaces = %+v", list.Items)
	}
}
