package catalog

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The caches hold, of each Service and EndpointSlice, only what Build and
// the indexes read, in types of their own: with thousands of Services the
// caches are most of kubefwd's memory at rest, and the API types cost far
// more than their content (a corev1.Service is 592 bytes before any of its
// strings, maps and slices; an EndpointSlice carries a label map, and each
// endpoint pointers to every optional field). Managed fields, kubectl's
// last-applied annotation (which repeats the whole object), status, IP
// families, zones, hints and owner references are never looked at. Get
// builds API objects again for Build, which keeps Build and its tests on the
// types everyone knows.

// cachedService is what the catalog keeps of a Service.
type cachedService struct {
	objectKey
	typ          corev1.ServiceType
	clusterIP    string
	externalName string
	ports        []cachedServicePort
}

type cachedServicePort struct {
	name     string
	protocol corev1.Protocol
	port     int32
}

// cachedSlice is what the catalog keeps of an EndpointSlice.
type cachedSlice struct {
	objectKey
	service     string // its kubernetes.io/service-name label
	addressType discoveryv1.AddressType
	ports       []cachedSlicePort
	endpoints   []cachedEndpoint
}

// cachedSlicePort keeps an EndpointPort; the API's nil pointers are kept as
// such where Build tells them apart from a zero value.
type cachedSlicePort struct {
	name     string
	protocol corev1.Protocol // "" for nil
	port     int32
	hasPort  bool
}

type cachedEndpoint struct {
	address            string // the first; Build reads no other
	podNamespace, pod  string // TargetRef's, with its kind
	targetKind         string
	hostname, nodeName string
	conditions         endpointConditions
}

// endpointConditions packs the two optional booleans Build reads.
type endpointConditions uint8

const (
	readyKnown endpointConditions = 1 << iota
	ready
	terminatingKnown
	terminating
)

// objectKey is a cached object's identity. It gives the informer's key and
// index functions the object metadata they ask for (meta.Accessor accepts
// an ObjectMetaAccessor).
type objectKey struct {
	namespace, name, resourceVersion string
}

func (k objectKey) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: k.namespace, Name: k.name, ResourceVersion: k.resourceVersion}
}

func keyOf(m *metav1.ObjectMeta) objectKey {
	return objectKey{namespace: m.Namespace, name: m.Name, resourceVersion: m.ResourceVersion}
}

// slim turns a decoded Service or EndpointSlice into what the cache keeps;
// the decoded object is left unchanged (the informer's reflector may still
// read it) and becomes garbage. Anything else (a tombstone, an object
// already slim) passes through.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		out := &cachedService{
			objectKey:    keyOf(&o.ObjectMeta),
			typ:          o.Spec.Type,
			clusterIP:    o.Spec.ClusterIP,
			externalName: o.Spec.ExternalName,
		}
		if len(o.Spec.Ports) > 0 {
			out.ports = make([]cachedServicePort, len(o.Spec.Ports))
			for i, p := range o.Spec.Ports {
				out.ports[i] = cachedServicePort{name: p.Name, protocol: p.Protocol, port: p.Port}
			}
		}
		return out, nil
	case *discoveryv1.EndpointSlice:
		out := &cachedSlice{
			objectKey:   keyOf(&o.ObjectMeta),
			service:     o.Labels[discoveryv1.LabelServiceName],
			addressType: o.AddressType,
		}
		if len(o.Ports) > 0 {
			out.ports = make([]cachedSlicePort, len(o.Ports))
			for i, p := range o.Ports {
				cp := cachedSlicePort{name: deref(p.Name), hasPort: p.Port != nil}
				if p.Protocol != nil {
					cp.protocol = *p.Protocol
				}
				if p.Port != nil {
					cp.port = *p.Port
				}
				out.ports[i] = cp
			}
		}
		if len(o.Endpoints) > 0 {
			out.endpoints = make([]cachedEndpoint, len(o.Endpoints))
			for i, ep := range o.Endpoints {
				ce := cachedEndpoint{hostname: deref(ep.Hostname), nodeName: deref(ep.NodeName)}
				if len(ep.Addresses) > 0 {
					ce.address = ep.Addresses[0]
				}
				if r := ep.TargetRef; r != nil {
					ce.targetKind, ce.podNamespace, ce.pod = r.Kind, r.Namespace, r.Name
				}
				if c := ep.Conditions.Ready; c != nil {
					ce.conditions |= readyKnown
					if *c {
						ce.conditions |= ready
					}
				}
				if c := ep.Conditions.Terminating; c != nil {
					ce.conditions |= terminatingKnown
					if *c {
						ce.conditions |= terminating
					}
				}
				out.endpoints[i] = ce
			}
		}
		return out, nil
	}
	return obj, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ptrTo returns nil for "", as the API would have sent nothing.
func ptrTo(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// service builds the API object Build reads.
func (s *cachedService) service() *corev1.Service {
	out := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.name, ResourceVersion: s.resourceVersion},
		Spec:       corev1.ServiceSpec{Type: s.typ, ClusterIP: s.clusterIP, ExternalName: s.externalName},
	}
	if len(s.ports) > 0 {
		out.Spec.Ports = make([]corev1.ServicePort, len(s.ports))
		for i, p := range s.ports {
			out.Spec.Ports[i] = corev1.ServicePort{Name: p.name, Protocol: p.protocol, Port: p.port}
		}
	}
	return out
}

// endpointSlice builds the API object Build reads.
func (s *cachedSlice) endpointSlice() *discoveryv1.EndpointSlice {
	out := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: s.namespace, Name: s.name, ResourceVersion: s.resourceVersion},
		AddressType: s.addressType,
	}
	if s.service != "" {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: s.service}
	}
	if len(s.ports) > 0 {
		out.Ports = make([]discoveryv1.EndpointPort, len(s.ports))
		for i, p := range s.ports {
			ep := discoveryv1.EndpointPort{Name: &p.name}
			if p.protocol != "" {
				ep.Protocol = &p.protocol
			}
			if p.hasPort {
				ep.Port = &p.port
			}
			out.Ports[i] = ep
		}
	}
	if len(s.endpoints) > 0 {
		out.Endpoints = make([]discoveryv1.Endpoint, len(s.endpoints))
		for i, ce := range s.endpoints {
			ep := discoveryv1.Endpoint{Hostname: ptrTo(ce.hostname), NodeName: ptrTo(ce.nodeName)}
			if ce.address != "" {
				ep.Addresses = []string{ce.address}
			}
			if ce.targetKind != "" || ce.pod != "" || ce.podNamespace != "" {
				ep.TargetRef = &corev1.ObjectReference{Kind: ce.targetKind, Namespace: ce.podNamespace, Name: ce.pod}
			}
			if ce.conditions&readyKnown != 0 {
				v := ce.conditions&ready != 0
				ep.Conditions.Ready = &v
			}
			if ce.conditions&terminatingKnown != 0 {
				v := ce.conditions&terminating != 0
				ep.Conditions.Terminating = &v
			}
			out.Endpoints[i] = ep
		}
	}
	return out
}
