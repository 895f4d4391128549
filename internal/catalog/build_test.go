package catalog

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubefwd/kubefwd/internal/forward"
)

func svc(name string, mut func(*corev1.Service), ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.ServiceSpec{Ports: ports}}
	if mut != nil {
		mut(s)
	}
	return s
}

func sp(name string, port int32, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, Protocol: proto, TargetPort: intstr.FromString("http")}
}

type epSpec struct {
	pod      string
	ready    bool
	hostname string
	notPod   bool
	ip       string // default 10.0.0.1
	node     string
	ending   bool // terminating
}

func slice(svcName string, ports map[string]int32, eps ...epSpec) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svcName + "-x", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for name, p := range ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p), Protocol: ptr.To(corev1.ProtocolTCP)})
	}
	for _, e := range eps {
		ip := e.ip
		if ip == "" {
			ip = "10.0.0.1"
		}
		ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready)}}
		if !e.notPod {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: e.pod, Namespace: "ns"}
		}
		if e.hostname != "" {
			ep.Hostname = ptr.To(e.hostname)
		}
		if e.node != "" {
			ep.NodeName = ptr.To(e.node)
		}
		if e.ending {
			ep.Conditions.Terminating = ptr.To(true)
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

func endpoint(pod string, port int32) forward.Endpoint {
	return forward.Endpoint{Pod: forward.Pod{Namespace: "ns", Name: pod}, Port: port}
}

func TestBuildClusterIP(t *testing.T) {
	s := svc("web", nil, sp("http", 80, corev1.ProtocolTCP), sp("metrics", 9090, ""), sp("dns", 53, corev1.ProtocolUDP))
	got := Build("ctx", s, []*discoveryv1.EndpointSlice{
		slice("web", map[string]int32{"http": 8080, "metrics": 9100},
			epSpec{pod: "web-b", ready: true}, epSpec{pod: "web-a", ready: true}, epSpec{pod: "web-c", ready: false}),
	}, BuildOptions{Mapping: Mapping{80: 8080}})
	if got.NotForwarded != "" || got.Headless {
		t.Fatalf("got %+v", got)
	}
	if len(got.Ports) != 2 {
		t.Fatalf("ports = %+v", got.Ports)
	}
	http := got.Ports[0]
	if http.Port != 80 || http.Local != 8080 || len(http.Endpoints) != 2 ||
		http.Endpoints[0] != endpoint("web-a", 8080) || http.Endpoints[1] != endpoint("web-b", 8080) {
		t.Errorf("http port = %+v", http)
	}
	if m := got.Ports[1]; m.Local != 9090 || len(m.Endpoints) != 2 || m.Endpoints[0].Port != 9100 {
		t.Errorf("metrics port = %+v", m)
	}
	if len(got.Skipped) != 1 || !strings.Contains(got.Skipped[0].Reason, "UDP") {
		t.Errorf("skipped = %+v", got.Skipped)
	}
}

func TestBuildNotForwardable(t *testing.T) {
	ext := svc("external", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = "example.com"
	}, sp("https", 443, corev1.ProtocolTCP))
	if got := Build("c", ext, nil, BuildOptions{}); !strings.Contains(got.NotForwarded, "ExternalName") {
		t.Errorf("ExternalName: %+v", got)
	}
	udp := svc("dns", nil, sp("dns", 53, corev1.ProtocolUDP))
	if got := Build("c", udp, nil, BuildOptions{}); got.NotForwarded == "" || len(got.Skipped) != 1 {
		t.Errorf("UDP only: %+v", got)
	}
	external := Build("c", svc("legacy", nil, sp("http", 80, corev1.ProtocolTCP)),
		[]*discoveryv1.EndpointSlice{slice("legacy", map[string]int32{"http": 80}, epSpec{ready: true, notPod: true})}, BuildOptions{})
	if external.NonPodEndpoints != 1 || !strings.Contains(external.NotForwarded, "not pods") {
		t.Errorf("endpoints that are not pods: %+v", external)
	}
}

func TestBuildHeadless(t *testing.T) {
	s := svc("db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }, sp("pg", 5432, corev1.ProtocolTCP))
	got := Build("c", s, []*discoveryv1.EndpointSlice{
		slice("db", map[string]int32{"pg": 5432},
			epSpec{pod: "db-1", ready: true, hostname: "db-1"}, epSpec{pod: "db-0", ready: false, hostname: "db-0"}),
	}, BuildOptions{})
	if !got.Headless || len(got.Pods) != 2 {
		t.Fatalf("got %+v", got)
	}
	if got.Pods[0].Name != "db-0" || len(got.Pods[0].Ports[0].Endpoints) != 0 {
		t.Errorf("not-ready db-0 = %+v", got.Pods[0])
	}
	if got.Pods[1].Name != "db-1" || got.Pods[1].Ports[0].Endpoints[0] != endpoint("db-1", 5432) {
		t.Errorf("db-1 = %+v", got.Pods[1])
	}
	if len(got.Ports[0].Endpoints) != 1 {
		t.Errorf("the service name balances over ready pods only: %+v", got.Ports[0])
	}
}

// The caches keep what Build reads: every desired forward built from the
// objects Get makes of cached ones is the one built from the full objects,
// which carry everything else the API sends (and slim drops).
func TestSlimKeepsWhatBuildReads(t *testing.T) {
	full := func(s *corev1.Service) *corev1.Service {
		s.Labels = map[string]string{"app": s.Name}
		s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"big":"object"}`}
		s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
		s.UID, s.ResourceVersion = "uid-1", "42"
		s.Spec.Selector = map[string]string{"app": s.Name}
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
		for i := range s.Spec.Ports {
			s.Spec.Ports[i].NodePort = 30000 + int32(i)
			s.Spec.Ports[i].AppProtocol = ptr.To("http")
		}
		return s
	}
	fullSlice := func(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
		es.Labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
		es.Annotations = map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-28T00:00:00Z"}
		es.OwnerReferences = []metav1.OwnerReference{{Kind: "Service", Name: "web"}}
		for i := range es.Endpoints {
			ep := &es.Endpoints[i]
			ep.Addresses = append(ep.Addresses, "10.0.0.99")
			ep.Zone = ptr.To("zone-a")
			ep.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-a"}}}
			ep.DeprecatedTopology = map[string]string{"kubernetes.io/hostname": "n1"}
			ep.Conditions.Serving = ptr.To(true)
			if ep.TargetRef != nil {
				ep.TargetRef.UID, ep.TargetRef.ResourceVersion = "pod-uid", "7"
			}
		}
		return es
	}
	http := map[string]int32{"http": 8080, "metrics": 9100}
	headless := func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }
	fqdn := fullSlice(slice("web", http, epSpec{pod: "web-z", ready: true}))
	fqdn.AddressType = discoveryv1.AddressTypeFQDN
	cases := []struct {
		name   string
		svc    *corev1.Service
		slices []*discoveryv1.EndpointSlice
	}{
		{"cluster IP", full(svc("web", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.1" },
			sp("http", 80, corev1.ProtocolTCP), sp("metrics", 9090, ""), sp("dns", 53, corev1.ProtocolUDP))),
			[]*discoveryv1.EndpointSlice{fullSlice(slice("web", http,
				epSpec{pod: "web-b", ready: true, node: "n2"}, epSpec{pod: "web-a", ready: true, node: "n1"},
				epSpec{pod: "web-c", ending: true}, epSpec{notPod: true, ready: true})), fqdn,
				fullSlice(udpSlice("web", map[string]int32{"dns": 5353}, epSpec{pod: "web-a", ip: "10.0.0.5", ready: true}))}},
		{"headless", full(svc("db", headless, sp("pg", 5432, corev1.ProtocolTCP), sp("admin", 5433, corev1.ProtocolTCP))),
			[]*discoveryv1.EndpointSlice{fullSlice(slice("db", map[string]int32{"pg": 5432, "admin": 0},
				epSpec{pod: "db-0", ready: true, hostname: "primary"}, epSpec{pod: "db-1", hostname: "db-1"}))}},
		{"external name", full(svc("ext", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
		}, sp("https", 443, corev1.ProtocolTCP))), nil},
		{"not pods", full(svc("legacy", nil, sp("http", 80, corev1.ProtocolTCP))),
			[]*discoveryv1.EndpointSlice{fullSlice(slice("legacy", map[string]int32{"http": 80}, epSpec{ready: true, notPod: true}))}},
		{"no ports", full(svc("empty", nil)), nil},
	}
	for _, c := range cases {
		for _, relay := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/relay=%v", c.name, relay), func(t *testing.T) {
				opts := BuildOptions{Mapping: Mapping{80: 8080}, Relay: relay}
				want := Build("ctx", c.svc, c.slices, opts)
				s, err := slim(c.svc)
				if err != nil {
					t.Fatal(err)
				}
				var slimmed []*discoveryv1.EndpointSlice
				for _, es := range c.slices {
					o, err := slim(es)
					if err != nil {
						t.Fatal(err)
					}
					slimmed = append(slimmed, o.(*cachedSlice).endpointSlice())
					if again, _ := slim(o); again != o {
						t.Errorf("slim of a cached slice made another object")
					}
				}
				if got := Build("ctx", s.(*cachedService).service(), slimmed, opts); !reflect.DeepEqual(got, want) {
					t.Errorf("built from slimmed objects:\n got %+v\nwant %+v", got, want)
				}
				// The originals are left as they were; the copies hold none
				// of what is never read.
				if c.svc.Annotations == nil || c.svc.Spec.Selector == nil {
					t.Errorf("slim changed the original Service: %+v", c.svc)
				}
				if got := s.(*cachedService).service(); got.Annotations != nil || got.ManagedFields != nil || got.Labels != nil ||
					got.Spec.Selector != nil || got.Spec.ClusterIPs != nil || got.Status.LoadBalancer.Ingress != nil {
					t.Errorf("slimmed Service kept what is never read: %+v", got)
				}
				for _, es := range slimmed {
					if len(es.Labels) != 1 || es.Annotations != nil || es.OwnerReferences != nil {
						t.Errorf("slimmed slice kept labels %v, annotations %v, owners %v", es.Labels, es.Annotations, es.OwnerReferences)
					}
					for _, ep := range es.Endpoints {
						if len(ep.Addresses) != 1 || ep.Zone != nil || ep.Hints != nil || ep.DeprecatedTopology != nil ||
							(ep.TargetRef != nil && ep.TargetRef.UID != "") {
							t.Errorf("slimmed endpoint kept what is never read: %+v", ep)
						}
					}
				}
			})
		}
	}
	// Tombstones and anything else pass through untouched.
	if got, _ := slim("other"); got != "other" {
		t.Errorf("slim(other) = %v", got)
	}
}

// Port numbers that cannot be listened on or connected to, and two ports
// wanting one local port, make that port "not forwarded" with a reason;
// nothing wraps through uint16 and nothing is merged.
func TestBuildPortsOutOfRange(t *testing.T) {
	ready := func(svcName string, ports map[string]int32) []*discoveryv1.EndpointSlice {
		return []*discoveryv1.EndpointSlice{slice(svcName, ports, epSpec{pod: "p", ready: true})}
	}
	type want struct {
		local   []int32  // the forwarded ports' local ports, in order
		skipped []string // substrings of each skip, "port: reason"
		notFwd  string   // substring of NotForwarded, "" if something is forwarded
	}
	for _, tc := range []struct {
		name    string
		ports   []corev1.ServicePort
		slices  []*discoveryv1.EndpointSlice
		mapping Mapping
		want    want
	}{
		{
			name:   "service port 0",
			ports:  []corev1.ServicePort{sp("zero", 0, corev1.ProtocolTCP), sp("http", 80, corev1.ProtocolTCP)},
			slices: ready("s", map[string]int32{"zero": 8080, "http": 8080}),
			want:   want{local: []int32{80}, skipped: []string{"zero (0/TCP): port 0 is outside 1-65535"}},
		},
		{
			name:   "service port 70000",
			ports:  []corev1.ServicePort{sp("big", 70000, corev1.ProtocolTCP)},
			slices: ready("s", map[string]int32{"big": 8080}),
			want:   want{skipped: []string{"big (70000/TCP): port 70000 is outside 1-65535"}, notFwd: "none of its ports can be forwarded (big (70000/TCP): port 70000"},
		},
		{
			name:    "mapped to 0",
			ports:   []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP)},
			slices:  ready("s", map[string]int32{"http": 8080}),
			mapping: Mapping{80: 0},
			want:    want{skipped: []string{"http (80/TCP): mapped to local port 0, outside 1-65535"}, notFwd: "none of its ports"},
		},
		{
			name:    "mapped to 70000",
			ports:   []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP), sp("https", 443, corev1.ProtocolTCP)},
			slices:  ready("s", map[string]int32{"http": 8080, "https": 8443}),
			mapping: Mapping{80: 70000},
			want:    want{local: []int32{443}, skipped: []string{"http (80/TCP): mapped to local port 70000"}},
		},
		{
			name:   "endpoint port 0",
			ports:  []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP), sp("admin", 81, corev1.ProtocolTCP)},
			slices: ready("s", map[string]int32{"http": 8080, "admin": 0}),
			want:   want{local: []int32{80}, skipped: []string{"admin (81/TCP): its EndpointSlices give target port 0, outside 1-65535"}},
		},
		{
			name:   "endpoint port 70000",
			ports:  []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP)},
			slices: ready("s", map[string]int32{"http": 70000}),
			want:   want{skipped: []string{"http (80/TCP): its EndpointSlices give target port 70000"}, notFwd: "none of its ports"},
		},
		{
			name:   "negative endpoint port",
			ports:  []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP)},
			slices: ready("s", map[string]int32{"http": -1}),
			want:   want{skipped: []string{"target port -1"}, notFwd: "none of its ports"},
		},
		{
			name:  "one slice good, one bad",
			ports: []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP)},
			slices: []*discoveryv1.EndpointSlice{
				slice("s", map[string]int32{"http": 8080}, epSpec{pod: "good", ready: true}),
				slice("s", map[string]int32{"http": 65536}, epSpec{pod: "bad", ready: true}),
			},
			want: want{local: []int32{80}, skipped: []string{"target port 65536, outside 1-65535; those endpoints are left out"}},
		},
		{
			name:    "mapped onto another port of the Service",
			ports:   []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP), sp("alt", 8080, corev1.ProtocolTCP)},
			slices:  ready("s", map[string]int32{"http": 8080, "alt": 8081}),
			mapping: Mapping{80: 8080},
			want:    want{local: []int32{8080}, skipped: []string{"alt (8080/TCP): local port 8080 is already taken by port http (80/TCP) of this Service"}},
		},
		{
			name:    "two ports mapped onto one",
			ports:   []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP), sp("https", 443, corev1.ProtocolTCP)},
			slices:  ready("s", map[string]int32{"http": 8080, "https": 8443}),
			mapping: Mapping{80: 9000, 443: 9000},
			want:    want{local: []int32{9000}, skipped: []string{"https (443/TCP): local port 9000 is already taken by port http (80/TCP)"}},
		},
		{
			name:    "swapped ports are fine",
			ports:   []corev1.ServicePort{sp("http", 80, corev1.ProtocolTCP), sp("alt", 8080, corev1.ProtocolTCP)},
			slices:  ready("s", map[string]int32{"http": 1, "alt": 65535}),
			mapping: Mapping{80: 8080, 8080: 80},
			want:    want{local: []int32{8080, 80}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Build("c", svc("s", nil, tc.ports...), tc.slices, BuildOptions{Mapping: tc.mapping})
			var local []int32
			for _, p := range got.Ports {
				local = append(local, p.Local)
				for _, ep := range p.Endpoints {
					if !ValidPort(ep.Port) {
						t.Errorf("port %d has an endpoint with port %d", p.Port, ep.Port)
					}
				}
			}
			if !slices.Equal(local, tc.want.local) {
				t.Errorf("local ports %v, want %v", local, tc.want.local)
			}
			if len(got.Skipped) != len(tc.want.skipped) {
				t.Fatalf("skipped %+v, want %d", got.Skipped, len(tc.want.skipped))
			}
			for i, s := range got.Skipped {
				if text := s.Port + ": " + s.Reason; !strings.Contains(text, tc.want.skipped[i]) {
					t.Errorf("skip %q does not say %q", text, tc.want.skipped[i])
				}
			}
			if (tc.want.notFwd == "") != (got.NotForwarded == "") || !strings.Contains(got.NotForwarded, tc.want.notFwd) {
				t.Errorf("not forwarded %q, want %q", got.NotForwarded, tc.want.notFwd)
			}
		})
	}
}

// Headless pods follow the Service's forwarded ports: a skipped port gets no
// listener on any pod's address either.
func TestBuildHeadlessSkipsBadPorts(t *testing.T) {
	s := svc("db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone },
		sp("pg", 5432, corev1.ProtocolTCP), sp("admin", 5433, corev1.ProtocolTCP))
	got := Build("c", s, []*discoveryv1.EndpointSlice{
		slice("db", map[string]int32{"pg": 5432, "admin": 0}, epSpec{pod: "db-0", ready: true, hostname: "db-0"}),
	}, BuildOptions{})
	if len(got.Pods) != 1 || len(got.Pods[0].Ports) != 1 || got.Pods[0].Ports[0].Port != 5432 {
		t.Fatalf("pods = %+v", got.Pods)
	}
	if len(got.Skipped) != 1 || !strings.Contains(got.Skipped[0].Reason, "target port 0") {
		t.Errorf("skipped = %+v", got.Skipped)
	}
}

// Every pod the slices list is a member, ready or not, once, in name order;
// a pod in two slices (one per address family) is ready if either says so.
func TestBuildMembers(t *testing.T) {
	ports := map[string]int32{"http": 8080}
	v4 := slice("web", ports,
		epSpec{pod: "web-b", ready: false, node: "n2", ending: true},
		epSpec{pod: "web-a", ready: true, node: "n1"},
		epSpec{notPod: true, ready: true})
	v6 := slice("web", ports, epSpec{pod: "web-c", ready: false, node: "n1"}, epSpec{pod: "web-a", ready: false, node: "n1"})
	v6.Name, v6.AddressType = "web-y", discoveryv1.AddressTypeIPv6
	got := Build("ctx", svc("web", nil, sp("http", 80, corev1.ProtocolTCP)), []*discoveryv1.EndpointSlice{v4, v6}, BuildOptions{}).Members
	want := []Member{
		{Pod: "web-a", Node: "n1", IP: "10.0.0.1", Ready: true},
		{Pod: "web-b", Node: "n2", IP: "10.0.0.1", Terminating: true},
		{Pod: "web-c", Node: "n1", IP: "10.0.0.1"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("members:\n got %+v\nwant %+v", got, want)
	}
}

// udpSlice is slice with its ports' protocol UDP.
func udpSlice(svcName string, ports map[string]int32, eps ...epSpec) *discoveryv1.EndpointSlice {
	es := slice(svcName, ports, eps...)
	for i := range es.Ports {
		es.Ports[i].Protocol = ptr.To(corev1.ProtocolUDP)
	}
	es.Name += "-udp"
	return es
}

func relayed(target string) forward.Endpoint { return forward.Endpoint{Target: target} }

// With --relay, what port-forward cannot carry goes through the relay,
// each with its reason; without it, the reasons name --relay.
func TestBuildRelay(t *testing.T) {
	on := BuildOptions{Relay: true}
	dns := svc("dns", nil, sp("dns-tcp", 53, corev1.ProtocolTCP), sp("dns-udp", 53, corev1.ProtocolUDP))
	dnsSlices := []*discoveryv1.EndpointSlice{
		slice("dns", map[string]int32{"dns-tcp": 5353}, epSpec{pod: "dns-a", ip: "10.0.0.1", ready: true}, epSpec{pod: "dns-b", ip: "10.0.0.2", ready: true}, epSpec{pod: "dns-c", ip: "10.0.0.3"}),
		udpSlice("dns", map[string]int32{"dns-udp": 5353}, epSpec{pod: "dns-a", ip: "10.0.0.1", ready: true}, epSpec{pod: "dns-b", ip: "10.0.0.2", ready: true}, epSpec{pod: "dns-c", ip: "10.0.0.3"}),
	}
	got := Build("c", dns, dnsSlices, on)
	if len(got.Ports) != 2 || len(got.Skipped) != 0 {
		t.Fatalf("TCP and UDP on 53 with --relay: %+v", got)
	}
	tcp, udp := got.Ports[0], got.Ports[1]
	if tcp.Protocol != corev1.ProtocolTCP || tcp.Relay != "" || !slices.Equal(tcp.Endpoints, []forward.Endpoint{endpoint("dns-a", 5353), endpoint("dns-b", 5353)}) {
		t.Errorf("TCP port = %+v", tcp)
	}
	if udp.Protocol != corev1.ProtocolUDP || udp.Local != 53 || udp.Relay != RelayUDP ||
		!slices.Equal(udp.Endpoints, []forward.Endpoint{relayed("10.0.0.1:5353"), relayed("10.0.0.2:5353")}) {
		t.Errorf("UDP port = %+v", udp)
	}
	if !got.UsesRelay() {
		t.Error("UsesRelay = false with a UDP port")
	}
	off := Build("c", dns, dnsSlices, BuildOptions{})
	if len(off.Ports) != 1 || off.UsesRelay() || len(off.Skipped) != 1 || !strings.Contains(off.Skipped[0].Reason, "--relay") {
		t.Errorf("without --relay: %+v", off)
	}
	if got := Build("c", svc("u", nil, sp("u", 53, corev1.ProtocolUDP)), nil, BuildOptions{}); !strings.Contains(got.NotForwarded, "--relay") {
		t.Errorf("UDP only, without --relay: %q", got.NotForwarded)
	}

	// Endpoints that are not pods.
	legacy := svc("legacy", nil, sp("http", 80, corev1.ProtocolTCP))
	legacySlices := []*discoveryv1.EndpointSlice{slice("legacy", map[string]int32{"http": 8080},
		epSpec{notPod: true, ip: "192.0.2.7", ready: true}, epSpec{notPod: true, ip: "192.0.2.8"})}
	got = Build("c", legacy, legacySlices, on)
	if got.NotForwarded != "" || len(got.Ports) != 1 || got.Ports[0].Relay != RelayNotPods ||
		!slices.Equal(got.Ports[0].Endpoints, []forward.Endpoint{relayed("192.0.2.7:8080")}) {
		t.Errorf("not pods, with --relay: %+v", got)
	}
	if off := Build("c", legacy, legacySlices, BuildOptions{}); !strings.Contains(off.NotForwarded, "--relay") {
		t.Errorf("not pods, without --relay: %q", off.NotForwarded)
	}
	// Pods and other endpoints together: the pods directly, the rest
	// through the relay, in one set.
	mixed := []*discoveryv1.EndpointSlice{slice("legacy", map[string]int32{"http": 8080},
		epSpec{pod: "legacy-0", ip: "10.0.2.1", ready: true}, epSpec{notPod: true, ip: "192.0.2.7", ready: true})}
	got = Build("c", legacy, mixed, on)
	if len(got.Ports) != 1 || got.Ports[0].Relay != RelaySomeNot ||
		!slices.Equal(got.Ports[0].Endpoints, []forward.Endpoint{relayed("192.0.2.7:8080"), endpoint("legacy-0", 8080)}) {
		t.Errorf("pods and others, with --relay: %+v", got.Ports)
	}
	if off := Build("c", legacy, mixed, BuildOptions{}); len(off.Ports) != 1 || off.Ports[0].Relay != "" || len(off.Ports[0].Endpoints) != 1 {
		t.Errorf("pods and others, without --relay: %+v", off.Ports)
	}

	// ExternalName: every TCP and UDP port, to the name it aliases.
	ext := svc("ext", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "db.example.com"
	}, sp("pg", 5432, corev1.ProtocolTCP), sp("stats", 8125, corev1.ProtocolUDP), sp("s", 9, corev1.ProtocolSCTP))
	got = Build("c", ext, nil, BuildOptions{Relay: true, Mapping: Mapping{5432: 15432}})
	if len(got.Ports) != 2 || len(got.Skipped) != 1 || !strings.Contains(got.Ports[0].Relay, "db.example.com") ||
		got.Ports[0].Local != 15432 || !slices.Equal(got.Ports[0].Endpoints, []forward.Endpoint{relayed("db.example.com:5432")}) ||
		got.Ports[1].Protocol != corev1.ProtocolUDP || !slices.Equal(got.Ports[1].Endpoints, []forward.Endpoint{relayed("db.example.com:8125")}) {
		t.Errorf("ExternalName with --relay: %+v", got)
	}
	if off := Build("c", ext, nil, BuildOptions{}); !strings.Contains(off.NotForwarded, "--relay") {
		t.Errorf("ExternalName without --relay: %q", off.NotForwarded)
	}
	bare := svc("bare", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "x.example.com"
	})
	if got := Build("c", bare, nil, on); !strings.Contains(got.NotForwarded, "declares no TCP or UDP ports") {
		t.Errorf("ExternalName without ports: %q", got.NotForwarded)
	}

	// Headless: each pod's UDP port goes to that pod's address.
	db := svc("db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone },
		sp("pg", 5432, corev1.ProtocolTCP), sp("gossip", 7946, corev1.ProtocolUDP))
	got = Build("c", db, []*discoveryv1.EndpointSlice{
		slice("db", map[string]int32{"pg": 5432}, epSpec{pod: "db-0", ip: "10.0.1.1", ready: true}, epSpec{pod: "db-1", ip: "10.0.1.2"}),
		udpSlice("db", map[string]int32{"gossip": 7946}, epSpec{pod: "db-0", ip: "10.0.1.1", ready: true}, epSpec{pod: "db-1", ip: "10.0.1.2"}),
	}, on)
	if len(got.Pods) != 2 {
		t.Fatalf("headless pods: %+v", got.Pods)
	}
	p0 := got.Pods[0].Ports
	if len(p0) != 2 || p0[0].Relay != "" || p0[1].Relay != RelayUDP ||
		!slices.Equal(p0[1].Endpoints, []forward.Endpoint{relayed("10.0.1.1:7946")}) {
		t.Errorf("db-0 ports = %+v", p0)
	}
	if p1 := got.Pods[1].Ports; len(p1) != 2 || len(p1[1].Endpoints) != 0 || p1[1].Relay != RelayUDP {
		t.Errorf("not-ready db-1 ports = %+v", p1)
	}
}
