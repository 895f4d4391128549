package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
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
// every Service and every pod of a headless one, how many ready replicas
// it has: what judges whether a failed connection had one to go to.
type world struct {
	factory  informers.SharedInformerFactory
	pods     cache.Indexer
	services cache.Indexer

	cancel context.CancelFunc // ends the watches

	mu    sync.Mutex
	ready Readiness // guarded by mu
}

func newWorld(c *cluster.Cluster) *world {
	f := informers.NewSharedInformerFactory(c.Clientset, 0)
	w := &world{factory: f, ready: Readiness{}}
	pods := f.Core().V1().Pods().Informer()
	svcs := f.Core().V1().Services().Informer()
	w.pods, w.services = pods.GetIndexer(), svcs.GetIndexer()
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
	pods.AddEventHandler(h)
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
	counts := map[string]int{}
	svcs, _ := w.services.ByIndex(cache.NamespaceIndex, ns)
	pods, _ := w.pods.ByIndex(cache.NamespaceIndex, ns)
	for _, so := range svcs {
		svc := so.(*corev1.Service)
		target := ns + "/" + svc.Name
		counts[target] = 0
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, po := range pods {
			pod := po.(*corev1.Pod)
			if !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			r := 0
			if podReady(pod) {
				r = 1
			}
			counts[target] += r
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				counts[target+"/"+pod.Name] = r
			}
		}
	}
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

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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
