// Package catalog turns a cluster's Services and EndpointSlices into the
// desired forwards: which ports of which Service to listen on, and which
// ready pod endpoints can take their connections. Build is the pure core;
// Catalog feeds it from informers.
package catalog

import (
	"cmp"
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
	// Members are the pods the EndpointSlices list, ready or not, by name:
	// what a user looks at when a name does not answer.
	Members []Member
}

// Member is one pod behind a Service.
type Member struct {
	Pod         string
	Node        string
	IP          string
	Ready       bool
	Terminating bool
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
	wanted := out.assignLocal(tcp, mapping)

	// Endpoints by Service port name, and the pods seen (ready or not).
	type podInfo struct {
		name  string
		ready bool
		ports map[string]int32 // Service port name → pod port
	}
	pods := map[string]*podInfo{} // by pod name
	ready := map[string][]forward.Endpoint{}
	badTarget := map[string]int32{} // Service port name → a target port no pod can have
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
			out.addMember(ep, isReady)
			for _, sp := range es.Ports {
				if sp.Port == nil || (sp.Protocol != nil && *sp.Protocol != corev1.ProtocolTCP) {
					continue
				}
				name := ""
				if sp.Name != nil {
					name = *sp.Name
				}
				if !ValidPort(*sp.Port) {
					// The apiserver does not check EndpointSlice ports.
					badTarget[name] = *sp.Port
					continue
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

	for _, p := range wanted {
		eps := ready[p.Name]
		if bad, ok := badTarget[p.Name]; ok {
			reason := fmt.Sprintf("its EndpointSlices give target port %d, outside 1-65535", bad)
			if len(eps) == 0 {
				out.Skipped = append(out.Skipped, Skip{Port: portLabel(p.ServicePort), Reason: reason})
				continue
			}
			out.Skipped = append(out.Skipped, Skip{Port: portLabel(p.ServicePort), Reason: reason + "; those endpoints are left out"})
		}
		slices.SortFunc(eps, compareEndpoints)
		out.Ports = append(out.Ports, Port{Name: p.Name, Port: p.Port, Local: p.local, Endpoints: slices.Compact(eps)})
	}
	if len(out.Ports) == 0 {
		var why []string
		for _, s := range out.Skipped {
			why = append(why, s.Port+": "+s.Reason)
		}
		out.NotForwarded = "none of its ports can be forwarded (" + strings.Join(why, "; ") + ")"
		return out
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

// addMember records a pod endpoint; a pod listed in several slices (one
// per address family) is one member, ready if any says so.
func (s *Service) addMember(ep discoveryv1.Endpoint, ready bool) {
	m := Member{Pod: ep.TargetRef.Name, Ready: ready, Terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating}
	if ep.NodeName != nil {
		m.Node = *ep.NodeName
	}
	if len(ep.Addresses) > 0 {
		m.IP = ep.Addresses[0]
	}
	i, found := slices.BinarySearchFunc(s.Members, m.Pod, func(a Member, pod string) int { return strings.Compare(a.Pod, pod) })
	if !found {
		s.Members = slices.Insert(s.Members, i, m)
		return
	}
	s.Members[i].Ready = s.Members[i].Ready || m.Ready
	s.Members[i].Terminating = s.Members[i].Terminating && m.Terminating
	s.Members[i].Node = cmp.Or(s.Members[i].Node, m.Node)
}

// localPort is a Service port and the local port it is to listen on.
type localPort struct {
	corev1.ServicePort
	local int32
}

// assignLocal picks each port's local port (the mapping's, or its own) and
// skips, with the reason, ports that would need an impossible port number
// or the local port another of this Service's ports already has (the first
// in the Service's order keeps it): one listener cannot tell which of two
// ports a connection is for.
func (s *Service) assignLocal(ports []corev1.ServicePort, mapping Mapping) []localPort {
	var out []localPort
	taken := map[int32]corev1.ServicePort{}
	for _, p := range ports {
		if !ValidPort(p.Port) {
			s.Skipped = append(s.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("port %d is outside 1-65535", p.Port)})
			continue
		}
		local, mapped := mapping[p.Port]
		if !mapped {
			local = p.Port
		}
		if !ValidPort(local) {
			s.Skipped = append(s.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("mapped to local port %d, outside 1-65535", local)})
			continue
		}
		if other, ok := taken[local]; ok {
			s.Skipped = append(s.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("local port %d is already taken by port %s of this Service", local, portLabel(other))})
			continue
		}
		taken[local] = p
		out = append(out, localPort{ServicePort: p, local: local})
	}
	return out
}

// ValidPort reports whether p is a TCP port number one can listen on or
// connect to.
func ValidPort(p int32) bool { return p >= 1 && p <= 65535 }

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
