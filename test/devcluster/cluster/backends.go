package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/kubefwd/kubefwd/internal/relaypod"
	"github.com/kubefwd/kubefwd/test/devcluster/backend"
)

// LogsGVR is kwok's Logs resource: it tells kwok which file holds the log
// of each container of the pod of the same name and namespace.
var LogsGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}

// PortForwardGVR is kwok's PortForward resource: it tells kwok where to send
// the streams of a port-forward to the pod of the same name and namespace.
var PortForwardGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}

// ManagedByLabel marks the PortForwards the harness created; any other
// PortForward belongs to the test that made it and is left alone.
const ManagedByLabel = "app.kubernetes.io/managed-by"

const managedBy = "kubefwd-devcluster"

// backends gives every pod in the cluster a real local server per declared
// TCP container port, and a PortForward pointing kwok at them. It follows
// pods with an informer; handlers only enqueue, workers converge.
type backends struct {
	client   kubernetes.Interface
	dynamic  dynamic.Interface
	log      io.Writer
	logDir   string // the pods' container logs
	queue    workqueue.TypedRateLimitingInterface[string]
	pods     func(namespace, name string) (*corev1.Pod, error)
	workers  sync.WaitGroup
	draining sync.WaitGroup // backends of deleted pods finishing their requests
	nudging  sync.WaitGroup // the follow-up nudge of each new PortForward

	podList func() ([]*corev1.Pod, error) // every pod, from the informer
	apiPort string                        // where the API server listens on 127.0.0.1

	mu      sync.Mutex
	state   map[string]*podBackend // by namespace/name; guarded by mu
	network map[string]string      // cluster address → local address, for the relay; guarded by mu
	outside []*backend.Server      // servers outside the pods; guarded by mu
	changed chan struct{}          // closed and replaced on every change; guarded by mu
}

type podBackend struct {
	uid      types.UID
	rv       uint64 // resourceVersion of the PortForward we wrote
	servers  []*backend.Server
	udp      []*backend.UDPServer
	relays   []*relayBackend
	logs     []*containerLog
	external bool // the PortForward was made by someone else
}

// containerLog is one container's log file, in the CRI format kwok reads
// (`<RFC 3339 time> stdout F <line>`); the container's servers share it.
type containerLog struct {
	mu sync.Mutex
	f  *os.File
}

func openContainerLog(path string) (*containerLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &containerLog{f: f}, nil
}

func (l *containerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b []byte
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		b = append(b, time.Now().UTC().Format(time.RFC3339Nano)+" stdout F "+strings.TrimSuffix(line, "\n")+"\n"...)
	}
	if _, err := l.f.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *containerLog) Close() error { return l.f.Close() }

// Backing describes how one pod is backed.
type Backing struct {
	UID types.UID
	// Ports maps container port → local port of the harness's server.
	Ports map[int32]int32
	// External is true when a PortForward made by someone else backs the pod.
	External bool
}

func newBackends(client kubernetes.Interface, dyn dynamic.Interface, logw io.Writer, logDir string) *backends {
	return &backends{
		client:  client,
		dynamic: dyn,
		log:     logw,
		logDir:  logDir,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		state:   map[string]*podBackend{},
		network: map[string]string{},
		changed: make(chan struct{}),
	}
}

// start runs the informer and workers until ctx ends; it returns once the
// pod cache has synced.
func (b *backends) start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(b.client, 0)
	podInformer := factory.Core().V1().Pods()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			b.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	lister := podInformer.Lister()
	b.pods = func(ns, name string) (*corev1.Pod, error) { return lister.Pods(ns).Get(name) }
	b.podList = func() ([]*corev1.Pod, error) { return lister.List(labels.Everything()) }
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		b.queue.ShutDown()
		factory.Shutdown()
		return fmt.Errorf("pod informer did not sync: %w", ctx.Err())
	}
	const workers = 4
	for range workers {
		b.workers.Add(1)
		go func() {
			defer b.workers.Done()
			for b.processNext(ctx) {
			}
		}()
	}
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		<-ctx.Done()
		b.queue.ShutDown()
		factory.Shutdown()
	}()
	return nil
}

// wait blocks until the workers have stopped, then closes every server.
func (b *backends) wait() {
	b.workers.Wait()
	b.draining.Wait()
	b.nudging.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, pb := range b.state {
		pb.close()
		delete(b.state, key)
	}
	closeAll(b.outside)
	b.outside = nil
}

func (b *backends) processNext(ctx context.Context) bool {
	key, quit := b.queue.Get()
	if quit {
		return false
	}
	defer b.queue.Done(key)
	if err := b.sync(ctx, key); err != nil {
		if ctx.Err() == nil && !errors.Is(err, errRetry) {
			fmt.Fprintf(b.log, "devcluster: backend for pod %s: %v (retrying)\n", key, err)
		}
		b.queue.AddRateLimited(key)
		return true
	}
	b.queue.Forget(key)
	return true
}

func (b *backends) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := b.pods(ns, name)
	if apierrors.IsNotFound(err) {
		b.drop(key, "")
		return b.deletePortForward(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	cur := b.state[key]
	b.mu.Unlock()
	if cur != nil && cur.uid == pod.UID {
		return nil
	}
	if cur != nil { // same name, new pod (a StatefulSet replica came back)
		b.drop(key, cur.uid)
	}

	existing, err := b.dynamic.Resource(PortForwardGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return err
	case existing.GetLabels()[ManagedByLabel] != managedBy:
		b.set(key, &podBackend{uid: pod.UID, external: true})
		return nil
	case !ownedBy(existing, pod.UID):
		// Left from an earlier pod of this name. Replace it with a new
		// object rather than updating it: the garbage collector may be
		// about to delete the old one, and it deletes by UID.
		uid := existing.GetUID()
		err := b.dynamic.Resource(PortForwardGVR).Namespace(ns).Delete(ctx, name,
			metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
		return errRetry
	}

	pb := &podBackend{uid: pod.UID}
	var forwards, logs []any
	for _, ctr := range pod.Spec.Containers {
		path := filepath.Join(b.logDir, ns+"_"+name+"_"+string(pod.UID)+"_"+ctr.Name+".log")
		clog, err := openContainerLog(path)
		if err != nil {
			pb.close()
			return err
		}
		pb.logs = append(pb.logs, clog)
		logs = append(logs, map[string]any{"containers": []any{ctr.Name}, "logsFile": path, "follow": true})
		for _, p := range ctr.Ports {
			if p.Protocol == corev1.ProtocolUDP {
				// Not reachable by port-forward (TCP only), but by the
				// relay, which sends to the pod's address (dialCluster).
				u, err := backend.StartUDP(ns, name, p.ContainerPort)
				if err != nil {
					pb.close()
					return err
				}
				pb.udp = append(pb.udp, u)
				continue
			}
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			var local int32
			if pod.Labels[relaypod.NameLabel] == relaypod.Name && p.ContainerPort == relaypod.Port {
				// kubefwd's relay pod: the real relay server, dialling
				// what it is asked for in this cluster's stand-in network.
				r, err := b.startRelay(clog)
				if err != nil {
					pb.close()
					return err
				}
				pb.relays = append(pb.relays, r)
				local = r.port()
			} else {
				s, err := backend.StartLogging(ns, name, p.ContainerPort, clog)
				if err != nil {
					pb.close()
					return err
				}
				pb.servers = append(pb.servers, s)
				local = s.Port()
			}
			forwards = append(forwards, map[string]any{
				"ports":  []any{int64(p.ContainerPort)},
				"target": map[string]any{"address": "127.0.0.1", "port": int64(local)},
			})
		}
	}
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "PortForward",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ns,
			"labels":    map[string]any{ManagedByLabel: managedBy},
			// The garbage collector removes it with the pod even if the
			// harness is gone by then.
			"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "Pod", "name": name, "uid": string(pod.UID),
			}},
		},
		"spec": map[string]any{"forwards": forwards},
	}}
	client := b.dynamic.Resource(PortForwardGVR).Namespace(ns)
	var written *unstructured.Unstructured
	if existing != nil {
		pf.SetResourceVersion(existing.GetResourceVersion())
		written, err = client.Update(ctx, pf, metav1.UpdateOptions{})
	} else {
		written, err = client.Create(ctx, pf, metav1.CreateOptions{})
	}
	if err != nil {
		pb.close()
		return fmt.Errorf("write PortForward: %w", err)
	}
	if err := b.writeLogs(ctx, pod, logs); err != nil {
		pb.close()
		return err
	}
	// etcd revisions: kwok's informer sees PortForwards in this order.
	pb.rv, _ = strconv.ParseUint(written.GetResourceVersion(), 10, 64)
	b.set(key, pb)
	// One more event a second later: kwok may have cached its PortForward
	// list without this one (see nudge), and the next event makes it list
	// again. So a connection to a pod that just turned ready finds it, as
	// on a real node, and not only once a test waited with WaitServing.
	b.nudging.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if err := b.nudge(ctx, ns, name, pod.UID); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			fmt.Fprintf(b.log, "devcluster: nudge PortForward %s/%s: %v\n", ns, name, err)
		}
	})
	return nil
}

// writeLogs points kwok at the pod's container logs, replacing a Logs
// object left by an earlier pod of the same name.
func (b *backends) writeLogs(ctx context.Context, pod *corev1.Pod, logs []any) error {
	client := b.dynamic.Resource(LogsGVR).Namespace(pod.Namespace)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Logs",
		"metadata": map[string]any{
			"name":      pod.Name,
			"namespace": pod.Namespace,
			"labels":    map[string]any{ManagedByLabel: managedBy},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "Pod", "name": pod.Name, "uid": string(pod.UID),
			}},
		},
		"spec": map[string]any{"logs": logs},
	}}
	existing, err := client.Get(ctx, pod.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.Create(ctx, obj, metav1.CreateOptions{})
	case err != nil:
	default:
		obj.SetResourceVersion(existing.GetResourceVersion())
		_, err = client.Update(ctx, obj, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write Logs: %w", err)
	}
	return nil
}

// nudgeAnnotation is bumped on a harness PortForward to make kwok reread
// its PortForwards; see nudge.
const nudgeAnnotation = "kubefwd-devcluster/nudge"

// nudge rewrites an annotation of the harness's PortForward for a pod, so
// that kwok's informer sees a new event. kwok-controller (v0.8.0) caches its
// PortForward list keyed by the informer's last resource version
// (pkg/config/resources/cache.go), but client-go's reflector advances that
// version before the informer's store holds the object. A port-forward
// looked up in between caches the list without the new PortForward under
// the new version, and kwok answers "no forward found" until the next
// PortForward event, which for a lone pod never comes. A PortForward made by
// someone else is left alone.
func (b *backends) nudge(ctx context.Context, ns, name string, uid types.UID) error {
	client := b.dynamic.Resource(PortForwardGVR).Namespace(ns)
	pf, err := client.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if pf.GetLabels()[ManagedByLabel] != managedBy || !ownedBy(pf, uid) {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{%q:%q}}}`,
		pf.GetResourceVersion(), nudgeAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
	_, err = client.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// close stops a pod's servers and closes its logs.
func (pb *podBackend) close() {
	closeAll(pb.servers)
	for _, u := range pb.udp {
		u.Close()
	}
	for _, r := range pb.relays {
		r.close()
	}
	for _, l := range pb.logs {
		l.Close()
	}
}

// deletePortForward removes the harness's PortForward for a pod that is gone.
func (b *backends) deletePortForward(ctx context.Context, ns, name string) error {
	client := b.dynamic.Resource(PortForwardGVR).Namespace(ns)
	pf, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pf.GetLabels()[ManagedByLabel] != managedBy {
		return nil
	}
	uid := pf.GetUID()
	err = client.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// drop closes the servers of a pod (only of that UID, if given).
func (b *backends) drop(key string, uid types.UID) {
	b.mu.Lock()
	pb := b.state[key]
	if pb == nil || (uid != "" && pb.uid != uid) {
		b.mu.Unlock()
		return
	}
	delete(b.state, key)
	b.notifyLocked()
	b.mu.Unlock()
	// Like a container given SIGTERM: stop accepting at once, answer what
	// was accepted (bounded), then close.
	b.draining.Add(1)
	go func() {
		defer b.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		for _, s := range pb.servers {
			_ = s.Drain(ctx)
		}
		pb.close()
	}()
}

// drainTimeout bounds how long a deleted pod's backend finishes requests.
const drainTimeout = 5 * time.Second

func (b *backends) set(key string, pb *podBackend) {
	b.mu.Lock()
	b.state[key] = pb
	b.notifyLocked()
	b.mu.Unlock()
}

func (b *backends) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// backing returns the current backing of a pod and a channel closed at the
// next change.
func (b *backends) backing(ns, name string) (Backing, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pb := b.state[ns+"/"+name]
	if pb == nil {
		return Backing{}, false, b.changed
	}
	out := Backing{UID: pb.uid, External: pb.external, Ports: map[int32]int32{}}
	for _, s := range pb.servers {
		out.Ports[s.PodPort()] = s.Port()
	}
	return out, true, b.changed
}

// lastWritten returns the backed pod whose PortForward was written last, and
// one of its ports.
func (b *backends) lastWritten() (ns, name string, port int32, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var best uint64
	for key, pb := range b.state {
		if pb.external || len(pb.servers) == 0 || pb.rv < best {
			continue
		}
		best = pb.rv
		ns, name, _ = cache.SplitMetaNamespaceKey(key)
		port, ok = pb.servers[0].PodPort(), true
	}
	return ns, name, port, ok
}

// waitBacked blocks until the pod with this UID is backed.
func (b *backends) waitBacked(ctx context.Context, ns, name string, uid types.UID, timeout time.Duration) (Backing, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		bk, ok, changed := b.backing(ns, name)
		if ok && (uid == "" || bk.UID == uid) {
			return bk, nil
		}
		select {
		case <-ctx.Done():
			return Backing{}, fmt.Errorf("pod %s/%s not backed after %s", ns, name, timeout)
		case <-changed:
		}
	}
}

// errRetry asks for the key to be synced again shortly; it is not a failure.
var errRetry = errors.New("retry")

func ownedBy(obj *unstructured.Unstructured, uid types.UID) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

func closeAll(servers []*backend.Server) {
	for _, s := range servers {
		s.Close()
	}
}
