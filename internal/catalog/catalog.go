package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/kubeapi"
)

const byServiceIndex = "kubefwd.service"

// Options selects what a Catalog watches.
type Options struct {
	Context string
	Client  *kubeapi.Client
	// AllNamespaces watches the whole cluster; otherwise Namespaces are
	// watched (none at all is allowed: namespaces can be set later).
	AllNamespaces bool
	Namespaces    []string
	// LabelSelector and FieldSelector apply to Services (-l, -f).
	LabelSelector, FieldSelector string
	// OnWatchError, if set, hears every failed list or watch (called from
	// informer goroutines; it must return quickly).
	OnWatchError func(namespace string, err error)
}

// Catalog watches Services and EndpointSlices of one context, per namespace
// or cluster-wide, with shared informers: after the initial sync, the API
// load does not grow with the number of Services. Namespaces can be added
// and removed while it runs. Event handlers only report which Service
// changed; readers use the caches.
type Catalog struct {
	opts     Options
	onChange func(Key)

	mu      sync.Mutex
	ctx     context.Context   // from Start; nil before
	watches map[string]*watch // by namespace, "" for all; guarded by mu
	retired sync.WaitGroup    // watches being stopped
}

// watch is the pair of informers of one namespace (or of all).
type watch struct {
	namespace string
	services  cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	cancel    context.CancelFunc
	running   sync.WaitGroup // the informers' goroutines
	settled   chan struct{}  // closed at the first sync or the first error
	settle    sync.Once

	mu      sync.Mutex
	synced  bool
	lastErr error
}

// NamespaceState describes one watched namespace.
type NamespaceState = api.NamespaceState

// New prepares a Catalog; onChange is called (from informer goroutines)
// with the key of every Service whose desired forward may have changed.
func New(opts Options, onChange func(Key)) (*Catalog, error) {
	c := &Catalog{opts: opts, onChange: onChange, watches: map[string]*watch{}}
	scopes := opts.Namespaces
	if opts.AllNamespaces {
		scopes = []string{metav1.NamespaceAll}
	}
	for _, ns := range scopes {
		w, err := c.newWatch(ns)
		if err != nil {
			return nil, err
		}
		c.watches[ns] = w
	}
	return c, nil
}

func (c *Catalog) newWatch(ns string) (*watch, error) {
	w := &watch{namespace: ns, settled: make(chan struct{})}
	byNamespace := cache.SharedIndexInformerOptions{Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}}
	w.services = cache.NewSharedIndexInformerWithOptions(c.opts.Client.Services(ns, func(o *metav1.ListOptions) {
		o.LabelSelector = c.opts.LabelSelector
		o.FieldSelector = c.opts.FieldSelector
	}), &corev1.Service{}, byNamespace)
	w.slices = cache.NewSharedIndexInformerWithOptions(c.opts.Client.EndpointSlices(ns), &discoveryv1.EndpointSlice{}, byNamespace)
	for _, inf := range []cache.SharedIndexInformer{w.services, w.slices} {
		if err := inf.SetTransform(slim); err != nil {
			return nil, err
		}
	}
	if err := w.slices.AddIndexers(cache.Indexers{byServiceIndex: sliceService}); err != nil {
		return nil, err
	}
	for _, inf := range []cache.SharedIndexInformer{w.services, w.slices} {
		if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
			w.settle.Do(func() { close(w.settled) })
			if c.opts.OnWatchError != nil {
				c.opts.OnWatchError(ns, err)
			}
		}); err != nil {
			return nil, err
		}
	}
	svcHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.notifyService(obj) },
		UpdateFunc: func(_, obj any) { c.notifyService(obj) },
		DeleteFunc: func(obj any) { c.notifyService(obj) },
	}
	sliceHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.notifySlice(obj) },
		UpdateFunc: func(_, obj any) { c.notifySlice(obj) },
		DeleteFunc: func(obj any) { c.notifySlice(obj) },
	}
	if _, err := w.services.AddEventHandler(svcHandler); err != nil {
		return nil, err
	}
	if _, err := w.slices.AddEventHandler(sliceHandler); err != nil {
		return nil, err
	}
	return w, nil
}

// start runs w's informers under ctx (mu held).
func (c *Catalog) start(w *watch) {
	wctx, cancel := context.WithCancel(c.ctx)
	w.cancel = cancel
	w.running.Go(func() { w.services.RunWithContext(wctx) })
	w.running.Go(func() { w.slices.RunWithContext(wctx) })
	go func() { // ends at the sync or when w is stopped
		if cache.WaitForCacheSync(wctx.Done(), w.services.HasSynced, w.slices.HasSynced) {
			w.mu.Lock()
			w.synced, w.lastErr = true, nil
			w.mu.Unlock()
			w.settle.Do(func() { close(w.settled) })
		}
	}()
}

func sliceService(obj any) ([]string, error) {
	es, ok := obj.(*cachedSlice)
	if !ok || es.service == "" {
		return nil, nil
	}
	return []string{es.namespace + "/" + es.service}, nil
}

func (c *Catalog) notifyService(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if svc, ok := obj.(*cachedService); ok {
		c.onChange(Key{c.opts.Context, svc.namespace, svc.name})
	}
}

func (c *Catalog) notifySlice(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if es, ok := obj.(*cachedSlice); ok && es.service != "" {
		c.onChange(Key{c.opts.Context, es.namespace, es.service})
	}
}

// Start runs the informers until ctx ends. It returns once every namespace
// has synced or failed at least once (a forbidden or unreachable namespace
// keeps retrying in the background and shows in Namespaces), or when ctx
// ends.
func (c *Catalog) Start(ctx context.Context) error {
	c.mu.Lock()
	c.ctx = ctx
	var pending []*watch
	for _, w := range c.watches {
		c.start(w)
		pending = append(pending, w)
	}
	c.mu.Unlock()
	for _, w := range pending {
		select {
		case <-w.settled:
		case <-ctx.Done():
			return fmt.Errorf("context %q: Services and EndpointSlices did not sync: %w", c.opts.Context, ctx.Err())
		}
	}
	return nil
}

// SetNamespaces makes the catalog watch exactly namespaces: new ones are
// started (their Services reported as they arrive), dropped ones stopped
// and each of their Services reported, so that readers see them gone. It
// is an error on a catalog watching all namespaces.
func (c *Catalog) SetNamespaces(namespaces []string) (added, removed []string, err error) {
	if c.opts.AllNamespaces {
		return nil, nil, fmt.Errorf("context %q forwards all namespaces (-A)", c.opts.Context)
	}
	c.mu.Lock()
	var gone []*watch
	for ns, w := range c.watches {
		if !slices.Contains(namespaces, ns) {
			delete(c.watches, ns)
			gone = append(gone, w)
			removed = append(removed, ns)
		}
	}
	for _, ns := range namespaces {
		if _, ok := c.watches[ns]; ok {
			continue
		}
		w, err := c.newWatch(ns)
		if err != nil {
			c.mu.Unlock()
			return added, removed, err
		}
		c.watches[ns] = w
		if c.ctx != nil {
			c.start(w)
		}
		added = append(added, ns)
	}
	c.mu.Unlock()

	for _, w := range gone {
		if w.cancel != nil {
			w.cancel()
		}
		for _, obj := range w.services.GetStore().List() {
			svc := obj.(*cachedService)
			c.onChange(Key{c.opts.Context, svc.namespace, svc.name})
		}
		c.retired.Go(w.running.Wait)
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed, nil
}

// Namespaces reports the state of every watched namespace, sorted.
func (c *Catalog) Namespaces() []NamespaceState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NamespaceState, 0, len(c.watches))
	for ns, w := range c.watches {
		w.mu.Lock()
		st := NamespaceState{Namespace: ns, Synced: w.synced, Services: len(w.services.GetStore().ListKeys())}
		if w.lastErr != nil {
			st.Error = w.lastErr.Error()
			st.Forbidden = apierrors.IsForbidden(w.lastErr)
		}
		w.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b NamespaceState) int { return strings.Compare(a.Namespace, b.Namespace) })
	return out
}

// Shutdown stops the informers and waits for them to end, at most until ctx
// does; it reports whether they all ended. The bound is needed because
// client-go's streaming list (the reflector's watchList) sleeps through its
// retry backoff without watching for stop: after the apiserver has been
// away for a while, that is tens of seconds, and waiting for it would hold
// kubefwd's exit hostage. Such a goroutine ends by itself when its sleep
// does, and its events go nowhere.
func (c *Catalog) Shutdown(ctx context.Context) bool {
	c.mu.Lock()
	current := make([]*watch, 0, len(c.watches))
	for _, w := range c.watches {
		current = append(current, w)
	}
	c.mu.Unlock()
	var stopping sync.WaitGroup
	for _, w := range current {
		if w.cancel != nil {
			w.cancel()
		}
		stopping.Go(w.running.Wait)
	}
	done := make(chan struct{})
	go func() {
		stopping.Wait()
		c.retired.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// lookup returns the watch that holds namespace's objects, if any.
func (c *Catalog) lookup(namespace string) *watch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.watches[namespace]; w != nil {
		return w
	}
	return c.watches[metav1.NamespaceAll]
}

// Get returns a Service and its EndpointSlices from the caches.
func (c *Catalog) Get(key Key) (*corev1.Service, []*discoveryv1.EndpointSlice, error) {
	w := c.lookup(key.Namespace)
	if w == nil {
		return nil, nil, apierrors.NewNotFound(corev1.Resource("services"), key.Name)
	}
	obj, exists, err := w.services.GetStore().GetByKey(key.Namespace + "/" + key.Name)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		return nil, nil, apierrors.NewNotFound(corev1.Resource("services"), key.Name)
	}
	svc := obj.(*cachedService).service()
	objs, err := w.slices.GetIndexer().ByIndex(byServiceIndex, key.Namespace+"/"+key.Name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*cachedSlice).endpointSlice())
	}
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return svc, out, nil
}

// Keys lists every Service in the caches.
func (c *Catalog) Keys() []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []Key
	for _, w := range c.watches {
		for _, obj := range w.services.GetStore().List() {
			svc := obj.(*cachedService)
			keys = append(keys, Key{c.opts.Context, svc.namespace, svc.name})
		}
	}
	return keys
}
