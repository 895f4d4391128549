// Package relaypod keeps the relay pod of one kubefwd instance in one
// cluster: created when first needed, meeting the restricted Pod Security
// Standard, kept alive while its owner runs, deleted when it stops. Relays
// whose owner vanished are collected by the next kubefwd that starts, and
// end on their own once no client has reached them for a while.
package relaypod

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels and annotations of a relay pod.
const (
	NameLabel      = "app.kubernetes.io/name"
	Name           = "kubefwd-relay"
	InstanceLabel  = "kubefwd.dev/instance"
	HostAnnotation = "kubefwd.dev/owner-host"
	PIDAnnotation  = "kubefwd.dev/owner-pid"
	// HeartbeatAnnotation is when its owner last said it is alive
	// (RFC 3339); relays whose heartbeat is older than Stale are orphans.
	HeartbeatAnnotation = "kubefwd.dev/heartbeat"
)

// Port is where the relay listens in its pod.
const Port = 7300

// Selector selects every relay pod.
const Selector = NameLabel + "=" + Name

// Defaults.
const (
	// DefaultImage is the relay image's repository; its tag is kubefwd's
	// version.
	DefaultImage = "ghcr.io/kubefwd/kubefwd"
	// Heartbeat is how often an owner tells the cluster and its relay that
	// it is alive.
	Heartbeat = time.Minute
	// Stale is how old a heartbeat makes a relay an orphan.
	Stale = 5 * time.Minute
	// IdleExit is how long a relay runs without any client (its owner
	// pings it every Heartbeat) before it ends.
	IdleExit = 10 * time.Minute
)

// API is what the manager needs of the cluster (kubeapi.Client has it).
type API interface {
	Pods(ctx context.Context, namespace, labelSelector string) (*corev1.PodList, error)
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error)
	PatchPod(ctx context.Context, namespace, name string, mergePatch []byte) error
	DeletePod(ctx context.Context, namespace, name string, uid types.UID) error
}

// Options configure a Manager.
type Options struct {
	API       API
	Namespace string
	Image     string // full reference
	// Host and PID name the owner on its pod, so that a kubefwd started
	// later on the same machine knows a relay whose owner died.
	Host string
	PID  int
	// Ping asks the relay in pod whether it answers, and keeps it from
	// idling out.
	Ping func(ctx context.Context, pod string) error
	// Changed is called (from the manager's goroutine) when State changes.
	Changed func()
	Log     *slog.Logger
	// Alive says whether a process of this machine runs (default: signal 0).
	Alive func(pid int) bool
	// Poll is how often the pod is checked while it runs (default 5 s).
	Poll time.Duration
}

// State is where the relay stands.
type State struct {
	Pod   string // the relay pod's name, once created
	Ready bool
	// Reason says why it is not ready ("" when it is).
	Reason string
	// Forbidden: the user may not create pods there; what needs the relay
	// is not forwarded.
	Forbidden bool
}

// Manager runs one relay pod. Safe for concurrent use.
type Manager struct {
	opts     Options
	instance string
	want     chan struct{} // closed by Want

	mu      sync.Mutex
	state   State
	wantOne sync.Once
}

// New prepares a Manager; nothing happens in the cluster until Run.
func New(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Alive == nil {
		opts.Alive = processAlive
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.Changed == nil {
		opts.Changed = func() {}
	}
	return &Manager{opts: opts, instance: newInstance(), want: make(chan struct{}), state: State{Reason: "the relay pod is not started yet"}}
}

// Instance is the value of this manager's InstanceLabel.
func (m *Manager) Instance() string { return m.instance }

// Namespace is where the relay runs.
func (m *Manager) Namespace() string { return m.opts.Namespace }

// Want asks for the relay: Run creates it now if it has not yet.
func (m *Manager) Want() { m.wantOne.Do(func() { close(m.want) }) }

// Wanted says whether Want was called.
func (m *Manager) Wanted() bool {
	select {
	case <-m.want:
		return true
	default:
		return false
	}
}

// State says where the relay stands.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

func (m *Manager) set(s State) {
	m.mu.Lock()
	changed := m.state != s
	m.state = s
	m.mu.Unlock()
	if changed {
		m.opts.Changed()
	}
}

// Run collects orphaned relays, then, once wanted, keeps this instance's
// relay pod running until ctx ends, and deletes it.
func (m *Manager) Run(ctx context.Context) {
	m.Collect(ctx)
	select {
	case <-ctx.Done():
		return
	case <-m.want:
	}
	pause := time.Second
	for ctx.Err() == nil {
		pod, err := m.create(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			forbidden := apierrors.IsForbidden(err)
			reason := fmt.Sprintf("cannot create the relay pod in namespace %s: %v", m.opts.Namespace, err)
			if forbidden {
				// RBAC, or an admission policy (Pod Security, a webhook):
				// the server's message says which.
				reason = fmt.Sprintf("cannot create the relay (forbidden: %v)", err)
			}
			m.opts.Log.Warn("relay not started", "namespace", m.opts.Namespace, "err", err)
			m.set(State{Reason: reason, Forbidden: forbidden})
			// RBAC and quotas change rarely: try again now and then.
			if !sleep(ctx, max(pause, time.Minute)) {
				return
			}
			continue
		}
		m.opts.Log.Info("relay pod created", "namespace", pod.Namespace, "pod", pod.Name, "image", m.opts.Image)
		m.run(ctx, pod)
		m.remove(pod)
		if !sleep(ctx, pause) {
			return
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// run follows pod until it is gone, fails, or ctx ends.
func (m *Manager) run(ctx context.Context, pod *corev1.Pod) {
	m.set(State{Pod: pod.Name, Reason: "waiting for the relay pod to run"})
	ticker := time.NewTicker(m.opts.Poll)
	defer ticker.Stop()
	beat := time.Now()
	for {
		cur, err := m.opts.API.Pod(ctx, pod.Namespace, pod.Name)
		switch {
		case ctx.Err() != nil:
			return
		case apierrors.IsNotFound(err) || (err == nil && cur.UID != pod.UID):
			m.opts.Log.Warn("the relay pod is gone; starting another", "pod", pod.Name)
			m.set(State{Reason: "the relay pod was deleted; starting another"})
			return
		case err != nil:
			m.opts.Log.Debug("cannot read the relay pod", "pod", pod.Name, "err", err)
		case cur.Status.Phase == corev1.PodSucceeded || cur.Status.Phase == corev1.PodFailed:
			m.opts.Log.Warn("the relay pod ended; starting another", "pod", pod.Name, "phase", cur.Status.Phase, "reason", cur.Status.Reason)
			m.set(State{Reason: fmt.Sprintf("the relay pod %s ended (%s); starting another", pod.Name, cur.Status.Phase)})
			return
		case podReady(cur):
			m.set(State{Pod: pod.Name, Ready: true})
		default:
			m.set(State{Pod: pod.Name, Reason: "waiting for the relay pod to run" + waitingReason(cur)})
		}
		if time.Since(beat) >= Heartbeat {
			beat = time.Now()
			m.heartbeat(ctx, pod)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// heartbeat tells the cluster (for other instances' collectors) and the
// relay (so it does not idle out) that the owner is alive.
func (m *Manager) heartbeat(ctx context.Context, pod *corev1.Pod) {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, HeartbeatAnnotation, time.Now().UTC().Format(time.RFC3339))
	if err := m.opts.API.PatchPod(ctx, pod.Namespace, pod.Name, patch); err != nil && ctx.Err() == nil {
		m.opts.Log.Debug("relay heartbeat not recorded", "pod", pod.Name, "err", err)
	}
	if m.State().Ready && m.opts.Ping != nil {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := m.opts.Ping(pctx, pod.Name); err != nil && ctx.Err() == nil {
			m.opts.Log.Debug("relay ping failed", "pod", pod.Name, "err", err)
		}
	}
}

func (m *Manager) create(ctx context.Context) (*corev1.Pod, error) {
	return m.opts.API.CreatePod(ctx, Spec(m.opts.Namespace, m.opts.Image, m.instance, m.opts.Host, m.opts.PID, time.Now()))
}

// remove deletes pod, even as kubefwd stops (ctx may be over).
func (m *Manager) remove(pod *corev1.Pod) {
	// Bounded: an unreachable API server must not hold kubefwd's exit;
	// the relay then ends on its own once idle, or the next start
	// collects it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := m.opts.API.DeletePod(ctx, pod.Namespace, pod.Name, pod.UID)
	switch {
	case err == nil:
		m.opts.Log.Info("relay pod deleted", "namespace", pod.Namespace, "pod", pod.Name)
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
	default:
		m.opts.Log.Warn("cannot delete the relay pod; it ends on its own once idle", "namespace", pod.Namespace, "pod", pod.Name, "idle", IdleExit, "err", err)
	}
	m.set(State{Reason: "the relay pod is stopped"})
}

// Collect deletes the relay pods in the namespace whose owner is gone: it
// ended, ran on this machine and its process is gone, or has not sent a
// heartbeat for Stale.
func (m *Manager) Collect(ctx context.Context) {
	list, err := m.opts.API.Pods(ctx, m.opts.Namespace, Selector)
	if err != nil {
		if ctx.Err() == nil {
			m.opts.Log.Debug("cannot list relay pods to collect orphans", "namespace", m.opts.Namespace, "err", err)
		}
		return
	}
	for i := range list.Items {
		p := &list.Items[i]
		why := Orphaned(p, m.opts.Host, m.opts.Alive, time.Now())
		if why == "" || p.Labels[InstanceLabel] == m.instance {
			continue
		}
		err := m.opts.API.DeletePod(ctx, p.Namespace, p.Name, p.UID)
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			m.opts.Log.Warn("cannot delete an orphaned relay pod", "namespace", p.Namespace, "pod", p.Name, "err", err)
			continue
		}
		m.opts.Log.Info("orphaned relay pod deleted", "namespace", p.Namespace, "pod", p.Name, "because", why)
	}
}

// Orphaned says why a relay pod has no owner any more ("" if it may have).
func Orphaned(p *corev1.Pod, host string, alive func(int) bool, now time.Time) string {
	if p.DeletionTimestamp != nil {
		return ""
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return "it ended (" + string(p.Status.Phase) + ")"
	}
	if host != "" && p.Annotations[HostAnnotation] == host {
		if pid, err := strconv.Atoi(p.Annotations[PIDAnnotation]); err == nil && pid > 0 && !alive(pid) {
			return fmt.Sprintf("its owner (process %d of this machine) is gone", pid)
		}
	}
	beat, err := time.Parse(time.RFC3339, p.Annotations[HeartbeatAnnotation])
	if err != nil {
		beat = p.CreationTimestamp.Time
	}
	if age := now.Sub(beat); age > Stale {
		return fmt.Sprintf("its owner has not been heard of for %s", age.Round(time.Second))
	}
	return ""
}

// Spec is the relay pod: kubefwd itself, running `kubefwd relay`, within
// the restricted Pod Security Standard, with small requests and limits,
// no service account token and no Service links.
func Spec(namespace, image, instance, host string, pid int, now time.Time) *corev1.Pod {
	no, yes := false, true
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: Name + "-",
			Namespace:    namespace,
			Labels:       map[string]string{NameLabel: Name, InstanceLabel: instance, "app.kubernetes.io/managed-by": "kubefwd"},
			Annotations: map[string]string{
				HostAnnotation:      host,
				PIDAnnotation:       strconv.Itoa(pid),
				HeartbeatAnnotation: now.UTC().Format(time.RFC3339),
			},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			// The image is a Linux binary: never a Windows node of a mixed
			// cluster.
			NodeSelector:                  map[string]string{corev1.LabelOSStable: "linux"},
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			// No runAsUser: the image's user (65532) is non-root, and
			// platforms that assign user ids from a range (OpenShift's
			// restricted SCC) refuse a fixed one.
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  "relay",
				Image: image,
				Args:  []string{"relay", "--listen", ":" + strconv.Itoa(Port), "--idle-exit", IdleExit.String()},
				Ports: []corev1.ContainerPort{{Name: "relay", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(Port)}},
					PeriodSeconds: 5,
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					ReadOnlyRootFilesystem:   &yes,
					RunAsNonRoot:             &yes,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// Image is the default image for a kubefwd version.
func Image(version string) string {
	if version == "" || version == "devel" {
		return DefaultImage + ":latest"
	}
	return DefaultImage + ":" + version
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitingReason is what keeps a pod from running, as its container says.
func waitingReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			if w.Message != "" {
				return fmt.Sprintf(" (%s: %s)", w.Reason, w.Message)
			}
			return " (" + w.Reason + ")"
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
			return " (not scheduled: " + c.Message + ")"
		}
	}
	return ""
}

func newInstance() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
