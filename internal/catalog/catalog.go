package catalog

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const byServiceIndex = "kubefwd.service"

// Options selects what a Catalog watches.
type Options struct {
	Context string
	Client  kubernetes.Interface
	// Namespaces to watch; empty means all namespaces.
	Namespaces []string
	// LabelSelector and FieldSelector apply to Services (-l, -f).
	LabelSelector, FieldSelector string
}

// Catalog watches Services and EndpointSlices of one context, in its
// namespaces or cluster-wide, with shared informers: after the initial
// sync, the API load does not grow with the number of Services. Event
// handlers only report which Service changed; readers use the caches.
type Catalog struct {
	opts      Options
	factories []informers.SharedInformerFactory
	services  []cache.SharedIndexInformer
	slices    []cache.SharedIndexInformer
}

// New prepares a Catalog; onChange is called (from informer goroutines)
// with the key of every Service whose desired forward may have changed.
func New(opts Options, onChange func(Key)) (*Catalog, error) {
	c := &Catalog{opts: opts}
	scopes := opts.Namespaces
	if len(scopes) == 0 {
		scopes = []string{metav1.NamespaceAll}
	}
	for _, ns := range scopes {
		svcFactory := informers.NewSharedInformerFactoryWithOptions(opts.Client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.LabelSelector = opts.LabelSelector
				o.FieldSelector = opts.FieldSelector
			}))
		sliceFactory := informers.NewSharedInformerFactoryWithOptions(opts.Client, 0, informers.WithNamespace(ns))
		svcInf := svcFactory.Core().V1().Services().Informer()
		sliceInf := sliceFactory.Discovery().V1().EndpointSlices().Informer()
		if err := sliceInf.AddIndexers(cache.Indexers{byServiceIndex: sliceService}); err != nil {
			return nil, err
		}
		svcHandler := cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.notifyService(obj, onChange) },
			UpdateFunc: func(_, obj any) { c.notifyService(obj, onChange) },
			DeleteFunc: func(obj any) { c.notifyService(obj, onChange) },
		}
		sliceHandler := cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.notifySlice(obj, onChange) },
			UpdateFunc: func(_, obj any) { c.notifySlice(obj, onChange) },
			DeleteFunc: func(obj any) { c.notifySlice(obj, onChange) },
		}
		if _, err := svcInf.AddEventHandler(svcHandler); err != nil {
			return nil, err
		}
		if _, err := sliceInf.AddEventHandler(sliceHandler); err != nil {
			return nil, err
		}
		c.factories = append(c.factories, svcFactory, sliceFactory)
		c.services = append(c.services, svcInf)
		c.slices = append(c.slices, sliceInf)
	}
	return c, nil
}

func sliceService(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{es.Namespace + "/" + name}, nil
}

func (c *Catalog) notifyService(obj any, onChange func(Key)) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if svc, ok := obj.(*corev1.Service); ok {
		onChange(Key{c.opts.Context, svc.Namespace, svc.Name})
	}
}

func (c *Catalog) notifySlice(obj any, onChange func(Key)) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
		if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
			onChange(Key{c.opts.Context, es.Namespace, name})
		}
	}
}

// Start runs the informers until ctx ends and waits for their first sync.
func (c *Catalog) Start(ctx context.Context) error {
	for _, f := range c.factories {
		f.Start(ctx.Done())
	}
	var synced []cache.InformerSynced
	for i := range c.services {
		synced = append(synced, c.services[i].HasSynced, c.slices[i].HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("context %q: Services and EndpointSlices did not sync: %w", c.opts.Context, ctx.Err())
	}
	return nil
}

// Shutdown waits for the informers to stop (after ctx of Start ended).
func (c *Catalog) Shutdown() {
	for _, f := range c.factories {
		f.Shutdown()
	}
}

// Get returns a Service and its EndpointSlices from the caches.
func (c *Catalog) Get(key Key) (*corev1.Service, []*discoveryv1.EndpointSlice, error) {
	for i, inf := range c.services {
		obj, exists, err := inf.GetStore().GetByKey(key.Namespace + "/" + key.Name)
		if err != nil {
			return nil, nil, err
		}
		if !exists {
			continue
		}
		svc := obj.(*corev1.Service)
		objs, err := c.slices[i].GetIndexer().ByIndex(byServiceIndex, key.Namespace+"/"+key.Name)
		if err != nil {
			return nil, nil, err
		}
		var out []*discoveryv1.EndpointSlice
		for _, o := range objs {
			out = append(out, o.(*discoveryv1.EndpointSlice))
		}
		slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int {
			if a.Name < b.Name {
				return -1
			}
			if a.Name > b.Name {
				return 1
			}
			return 0
		})
		return svc, out, nil
	}
	return nil, nil, apierrors.NewNotFound(corev1.Resource("services"), key.Name)
}

// Keys lists every Service in the caches.
func (c *Catalog) Keys() []Key {
	var keys []Key
	for _, inf := range c.services {
		for _, obj := range inf.GetStore().List() {
			svc := obj.(*corev1.Service)
			keys = append(keys, Key{c.opts.Context, svc.Namespace, svc.Name})
		}
	}
	return keys
}
