// Package engine is the one place that wires kubefwd together and runs it:
// catalogs report changed Services, a single worker converges listeners,
// endpoints, addresses and hosts entries to what the catalogs say, and
// everything stops, cleaned up, when the context ends.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"

	"github.com/kubefwd/kubefwd/internal/acceptor"
	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/forward"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/kube"
	"github.com/kubefwd/kubefwd/internal/loopback"
	"github.com/kubefwd/kubefwd/internal/names"
	"github.com/kubefwd/kubefwd/internal/netwatch"
	"github.com/kubefwd/kubefwd/internal/relaypod"
)

// watchStopGrace is how long shutting down waits for the cluster watches.
const watchStopGrace = 2 * time.Second

// AddressAliases makes loopback addresses usable (macOS lo0 aliases).
type AddressAliases interface {
	Add(netip.Addr) error
	Remove(netip.Addr) error
	RemoveAll() error
}

// HostsWriter keeps this instance's hosts entries.
type HostsWriter interface {
	Apply(entries []hosts.Entry) (skipped []hosts.Skipped, err error)
	Remove() error
}

// Options configure an Engine.
type Options struct {
	Targets                      []kube.Target
	LabelSelector, FieldSelector string
	Mapping                      catalog.Mapping
	Domain                       string
	Loopback                     loopback.Config
	State                        loopback.Store
	Hosts                        HostsWriter
	Aliases                      AddressAliases // nil: none needed
	// Listen opens a TCP listener (nil: net.Listen); the privileged
	// helper's client binds them for a kubefwd that is not root.
	Listen func(netip.AddrPort) (net.Listener, error)
	// ListenPacket binds a UDP socket (nil: net.ListenPacket), as Listen.
	ListenPacket func(netip.AddrPort) (net.PacketConn, error)
	Proxy        forward.ProxyOptions
	UDP          forward.UDPOptions // UDP ports' flows (through the relay)
	Dialer       forward.DialerOptions
	PinFirst     bool
	// HostsDelay batches hosts writes: changes within it become one write.
	HostsDelay time.Duration
	// StateDelay batches address-state saves while running (default
	// 500 ms): new assignments within it become one write.
	StateDelay time.Duration
	// Network says which network's changes retire idle tunnels (the zero
	// value: this machine's, which is what kubefwd wants; tests watch a
	// private namespace).
	Network netwatch.Options
	Log     *slog.Logger
	Version string // reported in Status
	// Relay, when enabled, carries what port-forward cannot through a
	// relay pod per context (svc --relay).
	Relay RelayOptions
}

// RelayOptions configure the relay pods.
type RelayOptions struct {
	Enabled bool
	// Namespace for every context's relay ("": the context's first
	// forwarded namespace).
	Namespace string
	Image     string
	// Host names this machine on the relay pods (orphan collection).
	Host string
}

// Engine runs the forwarding.
type Engine struct {
	opts  Options
	log   *slog.Logger
	alloc *loopback.Allocator
	queue workqueue.TypedRateLimitingInterface[catalog.Key]

	clusters map[string]*cluster // by context name; fixed after New
	contexts []string            // context names in command-line order
	events   hub

	// nsMu guards every cluster's namespaces and serialises changes to them.
	nsMu sync.RWMutex

	watchErrMu sync.Mutex
	watchErrs  map[string]string // last list/watch error logged, by context/namespace
	watchFails map[string]int64  // list/watch errors by context

	// Owned by the worker goroutine.
	forwards map[catalog.Key]*svcForward
	reported map[catalog.Key]string // last "not forwarded" reason logged
	// Work done once per burst of changes, not once per Service: with
	// hundreds of Services, start-up would otherwise be quadratic.
	hostsChanged   bool
	tunnelsChanged map[string]bool // contexts whose unused tunnels to close
	settled        time.Time

	// The address state, saved as it changes (state.go).
	stateOffered uint64 // alloc.Changes() when last offered; worker only
	stateWake    chan struct{}
	stateMu      sync.Mutex
	statePending map[string]loopback.Assignment // not yet written; guarded by stateMu

	hostsDirty chan struct{}
	mu         sync.Mutex
	entries    []hosts.Entry   // what the hosts file should hold; guarded by mu
	refused    []hosts.Skipped // names left out of entries, and why; guarded by mu
	// hostsSkipped is every name the last hosts write left out (refused
	// here, or by the hosts writer); guarded by mu.
	hostsSkipped []hosts.Skipped
	// hostsErr is why the last hosts write failed ("" once one succeeds;
	// it is retried); guarded by mu.
	hostsErr string
	conns    map[net.Conn]struct{}
	accept   *acceptor.Acceptor // the listeners'; set by Run
	serving  sync.WaitGroup     // connections

	started  time.Time
	statusMu sync.Mutex
	status   map[catalog.Key][]forwardEntry // guarded by statusMu
	paused   pausedSet                      // guarded by statusMu
}

type cluster struct {
	target kube.Target
	// namespaces forwarded, in order (the first gets the short names);
	// guarded by Engine.nsMu. Under -A, the context's own namespace.
	namespaces []string
	catalog    *catalog.Catalog
	pool       *forward.Pool
	proxy      *forward.Proxy
	relay      *relaypod.Manager // nil without --relay

	relayMu    sync.Mutex
	relayUsers map[catalog.Key]bool // Services with ports through the relay; guarded by relayMu
}

type svcForward struct {
	key     catalog.Key
	addr    netip.Addr
	names   []string        // the names a hosts file may carry
	refused []hosts.Skipped // names that fail names.CheckHostname
	ports   map[listenKey]*portForward
	pods    map[string]*podForward // headless: by pod DNS name
}

type podForward struct {
	addr    netip.Addr
	names   []string
	refused []hosts.Skipped
	ports   map[listenKey]*portForward
}

// listenKey is what a listener is bound to on its address: a TCP and a UDP
// port of the same number are two.
type listenKey struct {
	port int32 // the local port
	udp  bool
}

type portForward struct {
	port int32          // the Service port
	name string         // its name; set by the worker, read by it when publishing
	ln   net.Listener   // TCP
	pc   net.PacketConn // UDP
	// relay says why this port goes through the relay pod, and how it
	// stands ("" if it goes to pods); set and read by the worker.
	relay    string
	eps      *forward.Endpoints
	counters *forward.Counters
	lastErr  atomic.Pointer[failure] // the last connection that could not be carried
}

type failure struct {
	at  time.Time
	msg string
}

// New prepares an Engine; nothing runs until Run.
func New(opts Options) (*Engine, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HostsDelay <= 0 {
		opts.HostsDelay = 100 * time.Millisecond
	}
	if opts.StateDelay <= 0 {
		opts.StateDelay = defaultStateDelay
	}
	previous, err := opts.State.Load()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:           opts,
		log:            opts.Log,
		alloc:          loopback.NewAllocator(opts.Loopback, previous, nil),
		queue:          workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[catalog.Key]()),
		clusters:       map[string]*cluster{},
		forwards:       map[catalog.Key]*svcForward{},
		reported:       map[catalog.Key]string{},
		tunnelsChanged: map[string]bool{},
		hostsDirty:     make(chan struct{}, 1),
		stateWake:      make(chan struct{}, 1),
		conns:          map[net.Conn]struct{}{},
		started:        time.Now(),
		status:         map[catalog.Key][]forwardEntry{},
		paused:         pausedSet{},
		watchErrs:      map[string]string{},
		watchFails:     map[string]int64{},
	}
	for _, t := range opts.Targets {
		d, err := forward.NewDialer(t.Config, opts.Dialer)
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", t.Context, err)
		}
		pool := forward.NewPool(d, 0)
		if d.Direct() {
			pool.UseDirect(d)
		}
		cat, err := catalog.New(catalog.Options{
			Context: t.Context, Client: t.Client,
			AllNamespaces: t.AllNamespaces, Namespaces: t.Namespaces,
			LabelSelector: opts.LabelSelector, FieldSelector: opts.FieldSelector,
			OnWatchError: func(ns string, err error) { e.watchError(t.Context, ns, err) },
		}, func(k catalog.Key) { e.queue.Add(k) })
		if err != nil {
			return nil, err
		}
		e.contexts = append(e.contexts, t.Context)
		cl := &cluster{
			target:     t,
			namespaces: slices.Clone(t.Namespaces),
			catalog:    cat,
			pool:       pool,
			proxy:      forward.NewProxy(pool, opts.Log.With("context", t.Context), opts.Proxy),
			relayUsers: map[catalog.Key]bool{},
		}
		if opts.Relay.Enabled {
			cl.relay = e.newRelay(cl)
		}
		e.clusters[t.Context] = cl
	}
	return e, nil
}

// Run forwards until ctx ends, then closes every listener and connection,
// removes the hosts entries and saves the address state (saved, too, as
// it changes while running).
func (e *Engine) Run(ctx context.Context) error {
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	e.accept = acceptor.New()
	var bg sync.WaitGroup
	var synced sync.WaitGroup
	for _, cl := range e.clusters {
		bg.Go(func() { cl.pool.Run(runCtx) })
		if cl.relay != nil {
			bg.Go(func() { cl.relay.Run(runCtx) })
		}
		synced.Add(1)
		bg.Go(func() {
			start := time.Now()
			err := cl.catalog.Start(runCtx)
			synced.Done()
			if err != nil {
				if runCtx.Err() == nil {
					e.log.Error("cannot watch the cluster", "context", cl.target.Context, "err", err)
				}
				return
			}
			e.log.Info("watching", "context", cl.target.Context, "namespaces", e.describeNamespaces(cl), "synced", time.Since(start).Round(time.Millisecond))
		})
	}
	bg.Go(func() { e.writeHosts(runCtx) })
	if w, ok := e.opts.Hosts.(hostsWatcher); ok {
		bg.Go(func() { e.watchHosts(runCtx, w) })
	}
	bg.Go(func() { e.saveState(runCtx) })
	bg.Go(func() { e.watchSleep(runCtx) })
	bg.Go(func() { e.watchNetwork(runCtx) })
	worker := make(chan struct{})
	go func() {
		defer close(worker)
		// Start converging once every cluster has listed what it has (or
		// failed to): the first hosts write then holds everything at once.
		synced.Wait()
		for e.processNext(serveCtx) {
		}
	}()

	<-ctx.Done()
	e.log.Info("shutting down")
	stopping := time.Now()
	e.queue.ShutDown()
	<-worker
	cancel()
	bg.Wait()
	// The watches get a short while to end: see Catalog.Shutdown for why
	// one may not, and then it ends on its own after kubefwd has moved on.
	watchCtx, watchCancel := context.WithTimeout(context.WithoutCancel(ctx), watchStopGrace)
	for _, cl := range e.clusters {
		if !cl.catalog.Shutdown(watchCtx) {
			e.log.Debug("a watch is still stopping; not waiting for it", "context", cl.target.Context)
		}
	}
	watchCancel()
	e.log.Debug("watches stopped", "after", time.Since(stopping))

	// Stop accepting, then end the connections in flight.
	for _, f := range e.forwards {
		f.closeAll()
	}
	e.accept.Close()
	stopServing()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.serving.Wait()
	for _, cl := range e.clusters {
		cl.pool.CloseAll()
	}
	e.log.Debug("connections and tunnels closed", "after", time.Since(stopping))

	var errs []error
	if err := e.opts.Hosts.Remove(); err != nil {
		errs = append(errs, fmt.Errorf("remove hosts entries: %w", err))
	}
	if e.opts.Aliases != nil {
		if err := e.opts.Aliases.RemoveAll(); err != nil {
			errs = append(errs, fmt.Errorf("remove loopback aliases: %w", err))
		}
	}
	for key := range e.forwards {
		e.release(key)
	}
	if err := e.opts.State.Save(e.alloc.State()); err != nil {
		errs = append(errs, err)
	}
	e.log.Info("stopped; hosts entries removed", "after", time.Since(stopping).Round(time.Millisecond))
	return errors.Join(errs...)
}

func (e *Engine) processNext(serveCtx context.Context) bool {
	key, quit := e.queue.Get()
	if quit {
		return false
	}
	defer e.queue.Done(key)
	if err := e.reconcile(serveCtx, key); err != nil {
		e.log.Warn("will retry", "service", key.String(), "err", err)
		e.queue.AddRateLimited(key)
	} else {
		e.queue.Forget(key)
	}
	// Settle when the burst is over, or at least every second while
	// changes keep coming.
	if e.queue.Len() == 0 || time.Since(e.settled) > time.Second {
		e.settle()
	}
	return true
}

// settle does the per-burst work: publish hosts entries, hand the address
// state to its saver, close tunnels no forward uses any more.
func (e *Engine) settle() {
	e.settled = time.Now()
	if e.hostsChanged {
		e.hostsChanged = false
		e.publishHosts()
	}
	e.offerState()
	for name := range e.tunnelsChanged {
		delete(e.tunnelsChanged, name)
		if cl := e.clusters[name]; cl != nil {
			e.forgetUnusedTunnels(cl)
		}
	}
}

// reconcile makes the forward of one Service match its desired state.
func (e *Engine) reconcile(serveCtx context.Context, key catalog.Key) error {
	cl := e.clusters[key.Context]
	if cl == nil {
		return nil
	}
	svc, endpointSlices, err := cl.catalog.Get(key)
	if apierrors.IsNotFound(err) {
		if e.forwards[key] != nil {
			e.log.Info("service gone; stopped forwarding", "service", key.String())
		}
		e.remove(key)
		cl.useRelay(key, false)
		e.publish(key, nil, nil, "")
		return nil
	}
	if err != nil {
		return err
	}
	desired := catalog.Build(key.Context, svc, endpointSlices, catalog.BuildOptions{Mapping: e.opts.Mapping, Relay: cl.relay != nil})
	cl.useRelay(key, desired.UsesRelay())
	if desired.UsesRelay() {
		viaRelay(cl.relay.Namespace(), cl.relay.State(), &desired)
	}
	for _, s := range desired.Skipped {
		e.reportOnce(catalog.Key{Context: key.Context, Namespace: key.Namespace, Name: key.Name + ":" + s.Port}, "port not forwarded", key, "port", s.Port, "reason", s.Reason)
	}
	if desired.NotForwarded != "" {
		e.reportOnce(key, "not forwarded", key, "reason", desired.NotForwarded)
		e.remove(key)
		e.publish(key, nil, &desired, desired.NotForwarded)
		return nil
	}
	if e.isPaused(key) {
		if e.forwards[key] != nil {
			e.log.Info("paused by the user", "service", key.String())
		}
		e.remove(key)
		e.publishPaused(key, &desired)
		return nil
	}

	scope := e.scope(cl, key.Namespace)
	f := e.forwards[key]
	if f != nil {
		// The namespace order may have changed (namespaces set): the first
		// namespace's Services own the short names.
		if hostnames, refused := publishable(names.Service(scope, key.Name)); !slices.Equal(hostnames, f.names) {
			f.names, f.refused = hostnames, refused
			for name, pf := range f.pods {
				pf.names, pf.refused = publishable(names.Pod(scope, name, key.Name))
			}
			e.markHostsDirty()
		}
	}
	if f == nil {
		// A reservation may name any of them, even one no hosts file gets.
		all := names.Service(scope, key.Name)
		hostnames, refused := publishable(all)
		addr, err := e.alloc.Get(key.String(), reservationNames(key, all))
		if err != nil {
			e.reportOnce(key, "not forwarded", key, "reason", err.Error())
			e.publish(key, nil, &desired, err.Error())
			return nil
		}
		f = &svcForward{key: key, addr: addr, names: hostnames, refused: refused, ports: map[listenKey]*portForward{}, pods: map[string]*podForward{}}
		e.forwards[key] = f
		e.markHostsDirty()
	}
	delete(e.reported, key)
	var errs []error
	if err := e.syncPorts(serveCtx, cl, origin{key: key}, f.addr, f.ports, desired.Ports); err != nil {
		errs = append(errs, err)
	}

	// Headless: each pod gets its own address and names.
	want := map[string]bool{}
	for _, p := range desired.Pods {
		want[p.Name] = true
		pf := f.pods[p.Name]
		if pf == nil {
			all := names.Pod(scope, p.Name, key.Name)
			hostnames, refused := publishable(all)
			podKey := key.String() + "/" + p.Name
			addr, err := e.alloc.Get(podKey, reservationNames(catalog.Key{Context: key.Context, Namespace: key.Namespace, Name: p.Name + "." + key.Name}, all))
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %s: %w", p.Name, err))
				continue
			}
			pf = &podForward{addr: addr, names: hostnames, refused: refused, ports: map[listenKey]*portForward{}}
			f.pods[p.Name] = pf
			e.markHostsDirty()
		}
		if err := e.syncPorts(serveCtx, cl, origin{key: key, pod: p.Name}, pf.addr, pf.ports, p.Ports); err != nil {
			errs = append(errs, err)
		}
	}
	for name, pf := range f.pods {
		if !want[name] {
			closePorts(pf.ports)
			if e.opts.Aliases != nil {
				_ = e.opts.Aliases.Remove(pf.addr)
			}
			delete(f.pods, name)
			e.alloc.Release(key.String() + "/" + name)
			e.markHostsDirty()
		}
	}
	e.tunnelsChanged[key.Context] = true
	err = errors.Join(errs...)
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	e.publish(key, f, &desired, reason)
	return err
}

// remove stops forwarding key and releases its addresses.
func (e *Engine) remove(key catalog.Key) {
	f := e.forwards[key]
	if f == nil {
		return
	}
	f.closeAll()
	if e.opts.Aliases != nil {
		_ = e.opts.Aliases.Remove(f.addr)
		for _, pf := range f.pods {
			_ = e.opts.Aliases.Remove(pf.addr)
		}
	}
	e.release(key) // while e.forwards still has its pods
	delete(e.forwards, key)
	e.markHostsDirty()
	e.tunnelsChanged[key.Context] = true
}

func (e *Engine) release(key catalog.Key) {
	e.alloc.Release(key.String())
	if f := e.forwards[key]; f != nil {
		for name := range f.pods {
			e.alloc.Release(key.String() + "/" + name)
		}
	}
}

func (f *svcForward) closeAll() {
	closePorts(f.ports)
	for _, pf := range f.pods {
		closePorts(pf.ports)
	}
}

// forgetUnusedTunnels closes tunnels to pods that no forward of this
// cluster uses any more (deleted pods, removed Services).
func (e *Engine) forgetUnusedTunnels(cl *cluster) {
	used := map[forward.Pod]bool{}
	for key, f := range e.forwards {
		if key.Context != cl.target.Context {
			continue
		}
		for _, pf := range f.ports {
			for _, ep := range pf.eps.List() {
				used[ep.Pod] = true
			}
		}
		for _, pod := range f.pods {
			for _, pf := range pod.ports {
				for _, ep := range pf.eps.List() {
					used[ep.Pod] = true
				}
			}
		}
	}
	cl.pool.Retain(func(p forward.Pod) bool { return used[p] })
}

func (e *Engine) scope(cl *cluster, namespace string) names.Scope {
	e.nsMu.RLock()
	idx := slices.Index(cl.namespaces, namespace)
	n := len(cl.namespaces)
	e.nsMu.RUnlock()
	if idx < 0 {
		idx = n // -A: only the home namespace gets short names
		if idx == 0 {
			idx = 1
		}
	}
	return names.Scope{
		Context: cl.target.Context, ContextIndex: cl.target.Index,
		Namespace: namespace, NamespaceIndex: idx,
		Domain: e.opts.Domain,
	}
}

// publishable splits names into those a hosts file may carry and those
// names.CheckHostname refuses (localhost, a Service named so, or a
// --domain localhost): one refused name must not cost the others.
func publishable(all []string) (keep []string, refused []hosts.Skipped) {
	for _, n := range all {
		if err := names.CheckHostname(n); err != nil {
			refused = append(refused, hosts.Skipped{Name: n, Reason: err.Error()})
			continue
		}
		keep = append(keep, n)
	}
	return keep, refused
}

// reservationNames are the names a -r/-z reservation may use for a key.
func reservationNames(key catalog.Key, hostnames []string) []string {
	out := slices.Clone(hostnames)
	return append(out, key.Name+"."+key.Namespace, key.Name+"."+key.Namespace+"."+key.Context)
}

func (e *Engine) reportOnce(dedupe catalog.Key, msg string, key catalog.Key, attrs ...any) {
	text := fmt.Sprint(msg, attrs)
	if e.reported[dedupe] == text {
		return
	}
	e.reported[dedupe] = text
	e.log.Warn(msg, append([]any{"service", key.String()}, attrs...)...)
}

func (e *Engine) describeNamespaces(cl *cluster) string {
	if cl.target.AllNamespaces {
		return "all"
	}
	e.nsMu.RLock()
	defer e.nsMu.RUnlock()
	return fmt.Sprint(cl.namespaces)
}

// watchError logs a failed list or watch once per distinct message, and
// tells event followers every time.
func (e *Engine) watchError(context, namespace string, err error) {
	where := context + "/" + namespace
	msg := err.Error()
	e.watchErrMu.Lock()
	repeat := e.watchErrs[where] == msg
	e.watchErrs[where] = msg
	e.watchFails[context]++
	e.watchErrMu.Unlock()
	if !repeat {
		ns := namespace
		if ns == "" {
			ns = "(all)"
		}
		e.log.Warn("cannot watch Services and EndpointSlices; retrying", "context", context, "namespace", ns, "err", err)
	}
	e.events.emit(api.Event{Type: api.EventWatchError, Context: context, Namespace: namespace, Message: msg})
}
