package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
)

// The workload: namespaces of Deployments (two replicas each, a Service
// each) and a StatefulSet behind a headless Service, whose pods have names
// of their own. The last namespace is the one the namespace fault deletes.
var namespaces = []string{"soak-a", "soak-b", "soak-c"}

const (
	servicesPerNamespace = 15
	replicas             = 2
	port                 = 8080
	volatileNamespace    = "soak-c"
)

func deploymentNames() []string {
	var out []string
	for i := range servicesPerNamespace {
		out = append(out, fmt.Sprintf("s%d", i))
	}
	return out
}

// createNamespace creates one namespace's workload; it does not wait.
func createNamespace(ctx context.Context, c *cluster.Cluster, ns string) error {
	if err := c.CreateNamespace(ctx, ns); err != nil {
		return err
	}
	for _, name := range deploymentNames() {
		if err := createApp(ctx, c, ns, name); err != nil {
			return err
		}
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: ns, Name: "db", Selector: "db", Headless: true,
		Ports: []corev1.ServicePort{cluster.ServicePort("http", port, intstr.FromInt32(port))}}); err != nil {
		return err
	}
	_, err := c.CreateStatefulSet(ctx, ns, "db", "db", replicas, cluster.ContainerPort("http", port))
	return err
}

func createApp(ctx context.Context, c *cluster.Cluster, ns, name string) error {
	if _, err := c.CreateDeployment(ctx, ns, name, replicas, cluster.ContainerPort("http", port)); err != nil {
		return err
	}
	_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: ns, Name: name, Selector: name,
		Ports: []corev1.ServicePort{cluster.ServicePort("http", port, intstr.FromInt32(port))}})
	return err
}

// world follows the soak's namespaces in the cluster and records, for
// every Service and every pod of a headless one, how many ready endpoints
// the cluster publishes for it: what judges whether a failed connection
// had somewhere to go. It reads EndpointSlices, not pods, because they are
// what kube-proxy and every client follow: after an API server outage the
// controller manager can take a while to publish a pod that is already
// Ready, and no client could have reached that pod in the meantime.
type world struct {
	factory  informers.SharedInformerFactory
	slices   cache.Indexer
	services cache.Indexer

	cancel context.CancelFunc // ends the watches

	mu    sync.Mutex
	ready Readiness // guarded by mu
}

func newWorld(c *cluster.Cluster) *world {
	f := informers.NewSharedInformerFactory(c.Clientset, 0)
	w := &world{factory: f, ready: Readiness{}}
	slices := f.Discovery().V1().EndpointSlices().Informer()
	svcs := f.Core().V1().Services().Informer()
	w.slices, w.services = slices.GetIndexer(), svcs.GetIndexer()
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.changed(obj) },
		UpdateFunc: func(_, obj any) { w.changed(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			w.changed(obj)
		},
	}
	slices.AddEventHandler(h)
	svcs.AddEventHandler(h)
	return w
}

func (w *world) start(ctx context.Context) error {
	ctx, w.cancel = context.WithCancel(ctx)
	w.factory.Start(ctx.Done())
	for typ, ok := range w.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("watch %v: not synced", typ)
		}
	}
	return nil
}

func (w *world) stop() {
	w.cancel()
	w.factory.Shutdown()
}

func (w *world) changed(obj any) {
	o, ok := obj.(interface{ GetNamespace() string })
	if !ok || !strings.HasPrefix(o.GetNamespace(), "soak-") {
		return
	}
	w.recount(o.GetNamespace(), time.Now())
}

// recount records every target's ready count in ns as the caches hold it.
func (w *world) recount(ns string, now time.Time) {
	svcs, _ := w.services.ByIndex(cache.NamespaceIndex, ns)
	slices, _ := w.slices.ByIndex(cache.NamespaceIndex, ns)
	var list []*corev1.Service
	for _, so := range svcs {
		list = append(list, so.(*corev1.Service))
	}
	var sl []*discoveryv1.EndpointSlice
	for _, o := range slices {
		sl = append(sl, o.(*discoveryv1.EndpointSlice))
	}
	counts := readyCounts(list, sl)
	w.mu.Lock()
	defer w.mu.Unlock()
	// Targets gone from the caches have no replica any more.
	for t, steps := range w.ready {
		if strings.HasPrefix(t, ns+"/") {
			if _, ok := counts[t]; !ok && steps[len(steps)-1].Ready != 0 {
				w.ready.Record(t, now, 0)
			}
		}
	}
	for t, n := range counts {
		w.ready.Record(t, now, n)
	}
}

// readyCounts is, for every Service and every pod behind a headless one,
// how many distinct ready endpoints its EndpointSlices publish. An endpoint
// listed in two slices (the controller moving it) counts once.
func readyCounts(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) map[string]int {
	counts := map[string]int{}
	headless := map[string]bool{}
	for _, svc := range svcs {
		target := svc.Namespace + "/" + svc.Name
		counts[target] = 0
		headless[target] = svc.Spec.ClusterIP == corev1.ClusterIPNone
	}
	seen := map[string]bool{}
	for _, s := range slices {
		target := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
		if _, ok := counts[target]; !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			if !endpointReady(ep) || len(ep.Addresses) == 0 {
				continue
			}
			key := target + " " + ep.Addresses[0]
			if seen[key] {
				continue
			}
			seen[key] = true
			counts[target]++
			if headless[target] && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				counts[target+"/"+ep.TargetRef.Name]++
			}
		}
	}
	return counts
}

// endpointReady follows the API's advice: an unknown (nil) ready condition
// is read as ready.
func endpointReady(ep discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

func (w *world) readiness() Readiness {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := Readiness{}
	for t, s := range w.ready {
		out[t] = append([]Step(nil), s...)
	}
	return out
}
