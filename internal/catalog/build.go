// Package catalog turns a cluster's Services and EndpointSlices into the
// desired forwards: which ports of which Service to listen on, and which
// ready pod endpoints can take their connections. Build is the pure core;
// Catalog feeds it from informers.
package catalog

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kubefwd/kubefwd/internal/forward"
)

// Key names a Service in one context.
type Key struct{ Context, Namespace, Name string }

func (k Key) String() string { return k.Context + "/" + k.Namespace + "/" + k.Name }

// Port is one forwarded Service port.
type Port struct {
	Name  string
	Port  int32 // the Service port
	Local int32 // where we listen: Port, unless --mapping says otherwise
	// Endpoints are the ready pod endpoints, target port resolved.
	Endpoints []forward.Endpoint
}

// Pod is one pod of a headless Service, forwarded under its own names.
type Pod struct {
	Name  string // DNS name of the pod within the Service (hostname or pod name)
	Ports []Port // each with this pod's endpoint only, if it is ready
}

// Skip is a port that cannot be forwarded, and why.
type Skip struct {
	Port   string
	Reason string
}

// Service is the desired forward of one Service.
type Service struct {
	Key      Key
	Headless bool
	Ports    []Port
	Pods     []Pod // headless Services only
	Skipped  []Skip
	// NotForwarded says why nothing of this Service is forwarded ("" if
	// something is).
	NotForwarded string
	// NonPodEndpoints counts ready endpoints that are not pods (port-forward
	// cannot reach them).
	NonPodEndpoints int
}

// Mapping maps Service ports to local ports (--mapping).
type Mapping map[int32]int32

// Build computes the desired forward of svc from its EndpointSlices.
func Build(context string, svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice, mapping Mapping) Service {
	out := Service{Key: Key{context, svc.Namespace, svc.Name}, Headless: svc.Spec.ClusterIP == corev1.ClusterIPNone}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		out.NotForwarded = fmt.Sprintf("ExternalName Service (an alias of %s): there is no pod to port-forward to", svc.Spec.ExternalName)
		return out
	}
	var tcp []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			out.Skipped = append(out.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("%s: port-forward carries TCP only", p.Protocol)})
			continue
		}
		tcp = append(tcp, p)
	}
	if len(tcp) == 0 {
		if len(svc.Spec.Ports) == 0 {
			out.NotForwarded = "the Service declares no ports"
		} else {
			out.NotForwarded = "the Service has no TCP ports"
		}
		return out
	}

	// Endpoints by Service port name, and the pods seen (ready or not).
	type podInfo struct {
		name  string
		ready bool
		ports map[string]int32 // Service port name → pod port
	}
	pods := map[string]*podInfo{} // by pod name
	ready := map[string][]forward.Endpoint{}
	for _, es := range endpointSlices {
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range es.Endpoints {
			isReady := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || ep.TargetRef.Name == "" {
				if isReady {
					out.NonPodEndpoints++
				}
				continue
			}
			ns := ep.TargetRef.Namespace
			if ns == "" {
				ns = svc.Namespace
			}
			pi := pods[ep.TargetRef.Name]
			if pi == nil {
				name := ep.TargetRef.Name
				if ep.Hostname != nil && *ep.Hostname != "" {
					name = *ep.Hostname
				}
				pi = &podInfo{name: name, ports: map[string]int32{}}
				pods[ep.TargetRef.Name] = pi
			}
			pi.ready = pi.ready || isReady
			for _, sp := range es.Ports {
				if sp.Port == nil || (sp.Protocol != nil && *sp.Protocol != corev1.ProtocolTCP) {
					continue
				}
				name := ""
				if sp.Name != nil {
					name = *sp.Name
				}
				pi.ports[name] = *sp.Port
				if isReady {
					ready[name] = append(ready[name], forward.Endpoint{
						Pod:  forward.Pod{Namespace: ns, Name: ep.TargetRef.Name},
						Port: *sp.Port,
					})
				}
			}
		}
	}

	if len(pods) == 0 && out.NonPodEndpoints > 0 {
		out.NotForwarded = fmt.Sprintf("its %d endpoints are not pods (port-forward reaches pods only)", out.NonPodEndpoints)
		return out
	}

	for _, p := range tcp {
		local := p.Port
		if m, ok := mapping[p.Port]; ok {
			local = m
		}
		eps := ready[p.Name]
		slices.SortFunc(eps, compareEndpoints)
		out.Ports = append(out.Ports, Port{Name: p.Name, Port: p.Port, Local: local, Endpoints: slices.Compact(eps)})
	}

	if out.Headless {
		names := make([]string, 0, len(pods))
		for podName := range pods {
			names = append(names, podName)
		}
		slices.Sort(names)
		for _, podName := range names {
			pi := pods[podName]
			pod := Pod{Name: pi.name}
			for _, p := range out.Ports {
				port := Port{Name: p.Name, Port: p.Port, Local: p.Local}
				if target, ok := pi.ports[p.Name]; ok && pi.ready {
					port.Endpoints = []forward.Endpoint{{Pod: forward.Pod{Namespace: svc.Namespace, Name: podName}, Port: target}}
				}
				pod.Ports = append(pod.Ports, port)
			}
			out.Pods = append(out.Pods, pod)
		}
	}
	return out
}

func compareEndpoints(a, b forward.Endpoint) int {
	if c := strings.Compare(a.Pod.String(), b.Pod.String()); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}

func portLabel(p corev1.ServicePort) string {
	if p.Name != "" {
		return fmt.Sprintf("%s (%d/%s)", p.Name, p.Port, p.Protocol)
	}
	return fmt.Sprintf("%d/%s", p.Port, p.Protocol)
}

// Ready reports whether any port has a ready endpoint.
func (s Service) Ready() bool {
	for _, p := range s.Ports {
		if len(p.Endpoints) > 0 {
			return true
		}
	}
	return false
}
