package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// AppLabel is the label every workload made here selects its pods by.
const AppLabel = "app"

// ContainerPort declares a named TCP container port.
func ContainerPort(name string, port int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}
}

// ServicePort maps a Service port to a target port (a number or a name).
func ServicePort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: target, Protocol: corev1.ProtocolTCP}
}

// UDPServicePort is a UDP Service port, which port-forward cannot carry.
func UDPServicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolUDP}
}

// CreateNamespace creates a namespace; an existing one is fine.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// RestrictedLabel is the label that makes PodSecurity admission enforce
// the restricted standard in a namespace.
const RestrictedLabel = "pod-security.kubernetes.io/enforce"

// Restrict makes the API server refuse, in namespace ns, pods that break
// the restricted Pod Security Standard.
func (c *Cluster) Restrict(ctx context.Context, ns string) error {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"restricted"}}}`, RestrictedLabel)
	if _, err := c.Clientset.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("restrict namespace %s: %w", ns, err)
	}
	return nil
}

func podTemplate(name string, ports []corev1.ContainerPort) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{AppLabel: name}},
		Spec: corev1.PodSpec{
			// Within the restricted Pod Security Standard, so that they run
			// in a namespace that enforces it (Restrict).
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{Name: "app", Image: "kubefwd-devcluster/backend", Ports: ports,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				}}},
			// kwok deletes pods at once anyway; say so for the API's sake.
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
}

// CreateDeployment creates a Deployment of replicas pods labelled app=name,
// each declaring the given container ports.
func (c *Cluster) CreateDeployment(ctx context.Context, ns, name string, replicas int32, ports ...corev1.ContainerPort) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{AppLabel: name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{AppLabel: name}},
			Template: podTemplate(name, ports),
		},
	}
	out, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create deployment %s/%s: %w", ns, name, err)
	}
	return out, nil
}

// CreateStatefulSet creates a StatefulSet (pods name-0, name-1, …) governed
// by the headless Service serviceName.
func (c *Cluster) CreateStatefulSet(ctx context.Context, ns, name, serviceName string, replicas int32, ports ...corev1.ContainerPort) (*appsv1.StatefulSet, error) {
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{AppLabel: name}},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         serviceName,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{AppLabel: name}},
			Template:            podTemplate(name, ports),
			PodManagementPolicy: appsv1.ParallelPodManagement,
		},
	}
	out, err := c.Clientset.AppsV1().StatefulSets(ns).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create statefulset %s/%s: %w", ns, name, err)
	}
	return out, nil
}

// scaler is what Deployments and StatefulSets have in common for scaling.
type scaler interface {
	GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
	UpdateScale(ctx context.Context, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
}

// Scale sets the replicas of a Deployment or StatefulSet ("deployment" or
// "statefulset").
func (c *Cluster) Scale(ctx context.Context, kind, ns, name string, replicas int32) error {
	var client scaler
	switch kind {
	case "deployment":
		client = c.Clientset.AppsV1().Deployments(ns)
	case "statefulset":
		client = c.Clientset.AppsV1().StatefulSets(ns)
	default:
		return fmt.Errorf("scale: kind %q is not deployment or statefulset", kind)
	}
	s, err := client.GetScale(ctx, name, metav1.GetOptions{})
	if err == nil {
		s.Spec.Replicas = replicas
		_, err = client.UpdateScale(ctx, name, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("scale %s %s/%s to %d: %w", kind, ns, name, replicas, err)
	}
	return nil
}

// ServiceSpec describes a Service to create.
type ServiceSpec struct {
	Namespace, Name string
	// Selector is app=<Selector>; empty makes a Service without selector.
	Selector string
	Ports    []corev1.ServicePort
	// Headless sets clusterIP: None.
	Headless bool
	// ExternalName makes an ExternalName Service pointing at this host.
	ExternalName string
}

// CreateService creates the Service described by spec.
func (c *Cluster) CreateService(ctx context.Context, spec ServiceSpec) (*corev1.Service, error) {
	svc := &corev1.Service{
		// Labelled like the workloads, so -l app=NAME selects it.
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: spec.Namespace, Labels: map[string]string{AppLabel: spec.Name}},
		Spec:       corev1.ServiceSpec{Ports: spec.Ports},
	}
	if spec.Selector != "" {
		svc.Spec.Selector = map[string]string{AppLabel: spec.Selector}
	}
	if spec.Headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	if spec.ExternalName != "" {
		svc.Spec.Type = corev1.ServiceTypeExternalName
		svc.Spec.ExternalName = spec.ExternalName
	}
	out, err := c.Clientset.CoreV1().Services(spec.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create service %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	return out, nil
}

// CreateEndpointSliceForPod creates a hand-made EndpointSlice for a Service
// without selector, pointing at one pod (its IP and a targetRef) on port.
func (c *Cluster) CreateEndpointSliceForPod(ctx context.Context, ns, service string, pod *corev1.Pod, portName string, port int32) (*discoveryv1.EndpointSlice, error) {
	if pod.Status.PodIP == "" {
		return nil, fmt.Errorf("pod %s/%s has no IP yet", pod.Namespace, pod.Name)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      service + "-manual",
			Namespace: ns,
			// Ties the slice to its Service; the endpointslice controller
			// leaves slices without its managed-by label alone.
			Labels: map[string]string{discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "kubefwd-devcluster"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{pod.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			NodeName:   ptr.To(pod.Spec.NodeName),
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	out, err := c.Clientset.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create endpointslice for %s/%s: %w", ns, service, err)
	}
	return out, nil
}

// CreateOutsideService creates a Service without selector whose
// EndpointSlice lists address (host:port of the cluster's network, not a
// pod) and serves it here: the relay reaches it, port-forward cannot.
func (c *Cluster) CreateOutsideService(ctx context.Context, ns, name, portName string, servicePort int32, address string) error {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	srv, err := c.backends.serveOutside(ns, name, int32(port))
	if err != nil {
		return err
	}
	c.MapAddress("tcp", address, srv)
	if _, err := c.CreateService(ctx, ServiceSpec{Namespace: ns, Name: name,
		Ports: []corev1.ServicePort{ServicePort(portName, servicePort, intstr.FromInt32(int32(port)))}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-outside", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "kubefwd-devcluster"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{host},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := c.Clientset.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create endpointslice for %s/%s: %w", ns, name, err)
	}
	return nil
}

// ServeLocal starts a backend server on 127.0.0.1 (a kernel-chosen port),
// stopped with the cluster, and returns its port: a server outside the
// cluster, for an ExternalName Service to alias as localhost.
func (c *Cluster) ServeLocal(ns, name string) (int32, error) {
	addr, err := c.backends.serveOutside(ns, name, 0)
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := strconv.Atoi(port)
	return int32(p), err
}

// Pods lists the pods labelled app=app, oldest first.
func (c *Cluster) Pods(ctx context.Context, ns, app string) ([]corev1.Pod, error) {
	list, err := c.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{AppLabel: app}).String(),
	})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// DeletePod deletes a pod and waits until it is gone.
func (c *Cluster) DeletePod(ctx context.Context, ns, name string) error {
	pod, err := c.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	uid := pod.UID
	if err := c.Clientset.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	return Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		p, err := c.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && p.UID != uid, nil
	})
}

// Backing reports how a pod is currently backed, if it is.
func (c *Cluster) Backing(ns, pod string) (Backing, bool) {
	b, ok, _ := c.backends.backing(ns, pod)
	return b, ok
}

// WaitBacked waits until the pod (with this UID, if given) has its backends
// and PortForward.
func (c *Cluster) WaitBacked(ctx context.Context, ns, pod string, uid string) (Backing, error) {
	return c.backends.waitBacked(ctx, ns, pod, types.UID(uid), time.Minute)
}

// LastBacked names the pod whose PortForward the harness wrote last, and one
// of its ports. Once a port-forward to it works, kwok has seen every earlier
// PortForward too.
func (c *Cluster) LastBacked() (ns, pod string, port int32, ok bool) {
	return c.backends.lastWritten()
}

// WaitServing waits until the pod is backed and answers GET / through the
// real port-forward path on its first declared port. While kwok keeps
// failing, it nudges the pod's PortForward (see backends.nudge).
func (c *Cluster) WaitServing(ctx context.Context, ns, pod string) error {
	b, err := c.WaitBacked(ctx, ns, pod, "")
	if err != nil {
		return err
	}
	var port int32
	for p := range b.Ports {
		port = p
		break
	}
	if port == 0 {
		return fmt.Errorf("pod %s/%s declares no TCP port to probe", ns, pod)
	}
	var last error
	start, nudged := time.Now(), time.Time{}
	err = Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.PortForwardGet(ctx, ns, pod, port, "/")
		if err == nil {
			return true, nil
		}
		if ctx.Err() == nil { // not an attempt cut short by the deadline
			last = err
		}
		// A kwok that keeps failing may hold a stale PortForward list
		// (see backends.nudge); a fresh event makes it reread. Give its
		// informer a moment first, and nudge at most once a second.
		if !b.External && time.Since(start) > time.Second && time.Since(nudged) > time.Second {
			nudged = time.Now()
			if err := c.backends.nudge(ctx, ns, pod, b.UID); err != nil && ctx.Err() == nil {
				last = errors.Join(last, fmt.Errorf("nudge its PortForward: %w", err))
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return nil
}

// WaitServiceReady waits until the Service's EndpointSlices list want ready
// endpoints and every one of those pods is backed and answers through a real
// port-forward. It returns the pods. On timeout the error says what was still
// missing, and what kwok logged about its watches.
func (c *Cluster) WaitServiceReady(ctx context.Context, ns, service string, want int, timeout time.Duration) ([]string, error) {
	var pods []string
	var why string // what the last check was waiting for
	err := Poll(ctx, timeout, func(ctx context.Context) (bool, error) {
		list, err := c.Clientset.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + service,
		})
		if err != nil {
			why = fmt.Sprintf("list EndpointSlices: %v", err)
			return false, nil
		}
		pods = pods[:0]
		for _, es := range list.Items {
			for _, ep := range es.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
					pods = append(pods, ep.TargetRef.Name)
				}
			}
		}
		if len(pods) != want {
			why = fmt.Sprintf("%d ready endpoints", len(pods))
			return false, nil
		}
		for _, p := range pods {
			b, ok := c.Backing(ns, p)
			if !ok {
				why = fmt.Sprintf("pod %s not backed by the harness yet (no PortForward written)", p)
				return false, nil
			}
			// kwok learns of PortForwards through its own informer: prove
			// each new pod answers through the real path before calling it
			// ready, so callers never race kwok.
			if !b.External && !c.verified(b.UID) {
				if err := c.WaitServing(ctx, ns, p); err != nil {
					why = fmt.Sprintf("pod %s backed but not serving: %v", p, err)
					return false, nil
				}
				c.markVerified(b.UID)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: want %d ready, backed endpoints (have %v): %w; last: %s%s",
			ns, service, want, pods, err, why, c.kwokLogLines(10))
	}
	return pods, nil
}

// kwokLogLines returns, for error messages, the last lines of kwok's log
// about its watches (the informers behind PortForwards) or errors: the rest
// is one line per pod status update.
func (c *Cluster) kwokLogLines(n int) string {
	path := filepath.Join(c.ClusterDir(), "logs", "kwok-controller.log")
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var lines []string
	for line := range strings.Lines(string(data)) {
		if strings.Contains(line, "reflector") || strings.Contains(line, "PortForward") || strings.Contains(line, `"level":"ERROR"`) {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
	}
	if len(lines) == 0 {
		return fmt.Sprintf("\n%s: no watch errors", path)
	}
	lines = lines[max(0, len(lines)-n):]
	return fmt.Sprintf("\n%s, watch errors (last %d):\n\t%s", path, len(lines), strings.Join(lines, "\n\t"))
}

func (c *Cluster) verified(uid types.UID) bool {
	c.verifiedMu.Lock()
	defer c.verifiedMu.Unlock()
	return c.verifiedUIDs[uid]
}

func (c *Cluster) markVerified(uid types.UID) {
	c.verifiedMu.Lock()
	defer c.verifiedMu.Unlock()
	if c.verifiedUIDs == nil {
		c.verifiedUIDs = map[types.UID]bool{}
	}
	c.verifiedUIDs[uid] = true
}

// CreateApp is the common case in one call: namespace ns (if needed), a
// Deployment name of replicas pods declaring port "http" 8080, and a Service
// name whose servicePort targets "http". It returns the ready, serving pods.
func (c *Cluster) CreateApp(ctx context.Context, ns, name string, replicas int32, servicePort int32) ([]string, error) {
	if err := c.CreateNamespace(ctx, ns); err != nil {
		return nil, err
	}
	if _, err := c.CreateDeployment(ctx, ns, name, replicas, ContainerPort("http", 8080)); err != nil {
		return nil, err
	}
	if _, err := c.CreateService(ctx, ServiceSpec{Namespace: ns, Name: name, Selector: name,
		Ports: []corev1.ServicePort{ServicePort("http", servicePort, intstr.FromString("http"))}}); err != nil {
		return nil, err
	}
	return c.WaitServiceReady(ctx, ns, name, int(replicas), time.Minute)
}
