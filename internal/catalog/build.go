// Package catalog turns a cluster's Services and EndpointSlices into the
// desired forwards: which ports of which Service to listen on, and which
// ready pod endpoints can take their connections. Build is the pure core;
// Catalog feeds it from informers.
package catalog

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
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
	Name     string
	Protocol corev1.Protocol // TCP, or UDP (through the relay only)
	Port     int32           // the Service port
	Local    int32           // where we listen: Port, unless --mapping says otherwise
	// Endpoints are the ready endpoints, target port resolved: pods, and
	// for what goes through the relay, Targets for it to dial (their Pod
	// is the relay's, filled in by whoever knows it).
	Endpoints []forward.Endpoint
	// Relay says why this port goes through the relay pod ("" if it goes
	// straight to pods); only with BuildOptions.Relay.
	Relay string
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

// UsesRelay reports whether any port goes through the relay.
func (s Service) UsesRelay() bool {
	for _, p := range s.Ports {
		if p.Relay != "" {
			return true
		}
	}
	for _, pod := range s.Pods {
		for _, p := range pod.Ports {
			if p.Relay != "" {
				return true
			}
		}
	}
	return false
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

// BuildOptions say how Services are forwarded.
type BuildOptions struct {
	Mapping Mapping
	// Relay carries through the relay pod what port-forward cannot: UDP
	// ports, endpoints that are not pods, ExternalName Services.
	Relay bool
}

// Why a port goes through the relay, and the hint where it cannot go at all.
const (
	RelayUDP       = "UDP: port-forward carries TCP only"
	RelayNotPods   = "its endpoints are not pods: port-forward reaches pods only"
	RelaySomeNot   = "some of its endpoints are not pods: port-forward reaches pods only"
	relayHint      = " (--relay carries it through a relay pod)"
	relayReachHint = " (--relay reaches them through a relay pod)"
)

// Build computes the desired forward of svc from its EndpointSlices.
func Build(context string, svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice, opts BuildOptions) Service {
	out := Service{Key: Key{context, svc.Namespace, svc.Name}, Headless: svc.Spec.ClusterIP == corev1.ClusterIPNone}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return out.externalName(svc, opts)
	}
	var carried []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		switch {
		case p.Protocol == "" || p.Protocol == corev1.ProtocolTCP:
		case p.Protocol == corev1.ProtocolUDP && opts.Relay:
		case p.Protocol == corev1.ProtocolUDP:
			out.Skipped = append(out.Skipped, Skip{Port: portLabel(p), Reason: RelayUDP + relayHint})
			continue
		default:
			out.Skipped = append(out.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("%s: neither port-forward nor the relay carries it", p.Protocol)})
			continue
		}
		carried = append(carried, p)
	}
	if len(carried) == 0 {
		if len(svc.Spec.Ports) == 0 {
			out.NotForwarded = "the Service declares no ports"
		} else {
			out.NotForwarded = "the Service has no TCP ports"
			if !opts.Relay {
				out.NotForwarded += relayHint
			}
		}
		return out
	}
	wanted := out.assignLocal(carried, opts.Mapping)

	// Endpoints by Service port name, and the pods seen (ready or not).
	type podInfo struct {
		name  string
		ip    string
		ready bool
		ports map[string]int32 // Service port name → pod port
	}
	pods := map[string]*podInfo{} // by pod name
	ready := map[string][]forward.Endpoint{}
	notPods := map[string]bool{}    // Service port names with ready endpoints that are not pods
	badTarget := map[string]int32{} // Service port name → a target port no pod can have
	for _, es := range endpointSlices {
		if es.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range es.Endpoints {
			isReady := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			ip := ""
			if len(ep.Addresses) > 0 {
				ip = ep.Addresses[0]
			}
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || ep.TargetRef.Name == "" {
				if !isReady {
					continue
				}
				out.NonPodEndpoints++
				if !opts.Relay || ip == "" {
					continue
				}
				for _, sp := range es.Ports {
					if name, port, ok := slicePort(sp); ok && ValidPort(port) {
						ready[name] = append(ready[name], forward.Endpoint{Target: net.JoinHostPort(ip, strconv.Itoa(int(port)))})
						notPods[name] = true
					}
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
				pi = &podInfo{name: name, ip: ip, ports: map[string]int32{}}
				pods[ep.TargetRef.Name] = pi
			}
			pi.ready = pi.ready || isReady
			out.addMember(ep, isReady)
			for _, sp := range es.Ports {
				name, port, ok := slicePort(sp)
				if !ok || (!opts.Relay && protocolOf(sp) != corev1.ProtocolTCP) {
					continue
				}
				if !ValidPort(port) {
					// The apiserver does not check EndpointSlice ports.
					badTarget[name] = port
					continue
				}
				pi.ports[name] = port
				if !isReady {
					continue
				}
				if protocolOf(sp) == corev1.ProtocolUDP {
					// The relay sends to the pod's address; one address
					// family is enough (a dual-stack pod is in two slices).
					if pi.ip == ip && ip != "" {
						ready[name] = append(ready[name], forward.Endpoint{Target: net.JoinHostPort(ip, strconv.Itoa(int(port)))})
					}
					continue
				}
				ready[name] = append(ready[name], forward.Endpoint{
					Pod:  forward.Pod{Namespace: ns, Name: ep.TargetRef.Name},
					Port: port,
				})
			}
		}
	}

	if len(pods) == 0 && out.NonPodEndpoints > 0 && !opts.Relay {
		out.NotForwarded = fmt.Sprintf("its %d endpoints are not pods (port-forward reaches pods only)", out.NonPodEndpoints) + relayReachHint
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
		port := Port{Name: p.Name, Protocol: protocol(p.ServicePort), Port: p.Port, Local: p.local, Endpoints: slices.Compact(eps)}
		switch {
		case port.Protocol == corev1.ProtocolUDP:
			port.Relay = RelayUDP
		case notPods[p.Name] && len(pods) > 0:
			port.Relay = RelaySomeNot
		case notPods[p.Name] || (len(pods) == 0 && out.NonPodEndpoints > 0):
			port.Relay = RelayNotPods
		}
		out.Ports = append(out.Ports, port)
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
				port := Port{Name: p.Name, Protocol: p.Protocol, Port: p.Port, Local: p.Local}
				if p.Protocol == corev1.ProtocolUDP {
					port.Relay = RelayUDP
				}
				if target, ok := pi.ports[p.Name]; ok && pi.ready {
					if port.Relay != "" {
						if pi.ip != "" {
							port.Endpoints = []forward.Endpoint{{Target: net.JoinHostPort(pi.ip, strconv.Itoa(int(target)))}}
						}
					} else {
						port.Endpoints = []forward.Endpoint{{Pod: forward.Pod{Namespace: svc.Namespace, Name: podName}, Port: target}}
					}
				}
				pod.Ports = append(pod.Ports, port)
			}
			out.Pods = append(out.Pods, pod)
		}
	}
	return out
}

// externalName forwards an ExternalName Service's declared ports to the
// name it aliases, through the relay (which resolves it in the cluster).
func (s Service) externalName(svc *corev1.Service, opts BuildOptions) Service {
	why := fmt.Sprintf("ExternalName Service (an alias of %s)", svc.Spec.ExternalName)
	if !opts.Relay {
		s.NotForwarded = why + ": there is no pod to port-forward to" + relayHint
		return s
	}
	var carried []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if pr := protocol(p); pr != corev1.ProtocolTCP && pr != corev1.ProtocolUDP {
			s.Skipped = append(s.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("%s: the relay carries TCP and UDP only", p.Protocol)})
			continue
		}
		carried = append(carried, p)
	}
	if len(carried) == 0 {
		s.NotForwarded = why + ": it declares no TCP or UDP ports, so there is no port to listen on"
		return s
	}
	for _, p := range s.assignLocal(carried, opts.Mapping) {
		s.Ports = append(s.Ports, Port{
			Name: p.Name, Protocol: protocol(p.ServicePort), Port: p.Port, Local: p.local, Relay: why,
			Endpoints: []forward.Endpoint{{Target: net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(p.Port)))}},
		})
	}
	if len(s.Ports) == 0 {
		s.NotForwarded = why + ": none of its ports can be forwarded"
	}
	return s
}

// slicePort is an EndpointSlice port's name and number.
func slicePort(sp discoveryv1.EndpointPort) (name string, port int32, ok bool) {
	if sp.Port == nil {
		return "", 0, false
	}
	if sp.Name != nil {
		name = *sp.Name
	}
	return name, *sp.Port, true
}

func protocolOf(sp discoveryv1.EndpointPort) corev1.Protocol {
	if sp.Protocol == nil || *sp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return *sp.Protocol
}

func protocol(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
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
	type key struct {
		protocol corev1.Protocol
		local    int32
	}
	taken := map[key]corev1.ServicePort{}
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
		if other, ok := taken[key{protocol(p), local}]; ok {
			s.Skipped = append(s.Skipped, Skip{Port: portLabel(p), Reason: fmt.Sprintf("local port %d is already taken by port %s of this Service", local, portLabel(other))})
			continue
		}
		taken[key{protocol(p), local}] = p
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
	if c := strings.Compare(a.Target, b.Target); c != 0 {
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
