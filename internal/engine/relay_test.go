package engine_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/engine"
	"github.com/kubefwd/kubefwd/internal/relaypod"
	"github.com/kubefwd/kubefwd/test/devcluster/backend"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// relayPods lists the relay pods of every namespace.
func relayPods(t *testing.T, c *cluster.Cluster) []corev1.Pod {
	t.Helper()
	list, err := c.Clientset.CoreV1().Pods("").List(t.Context(), metav1.ListOptions{LabelSelector: relaypod.Selector})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// udpAsk sends one datagram to addr from a socket of its own and returns
// the reply.
func udpAsk(addr string, msg []byte) ([]byte, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 65535)
	// A flow's first datagram waits for its stream; resend as a client
	// would, should one be lost.
	for try := 0; try < 5; try++ {
		if _, err := conn.Write(msg); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		if err == nil {
			return buf[:n], nil
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no reply from %s", addr)
}

func dnsQuery(t *testing.T, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// With --relay, what port-forward cannot carry works by name: UDP (DNS,
// and many flows at once), endpoints that are not pods, the kubernetes
// Service, an ExternalName; through a relay pod the restricted standard
// admits, deleted when kubefwd stops.
func TestRelayCarriesWhatPortForwardCannot(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	if got := relayPods(t, c); len(got) != 0 {
		t.Fatalf("relay pods before the test: %d", len(got))
	}
	f := startEngine(t, c, fwdOptions{namespaces: []string{"demo", "default"}, relay: engine.RelayOptions{Enabled: true, Image: "kubefwd/relay:test", Host: "test-host"}})
	dns := f.waitName(t, "dns.demo")
	f.waitName(t, "billing")
	f.waitName(t, "alias")
	f.waitName(t, "kubernetes.default")

	// DNS over UDP, by name, through kubefwd → apiserver → kwok → relay →
	// the dns pod's UDP port.
	reply, err := udpAsk(net.JoinHostPort(dns, "53"), dnsQuery(t, "example.svc.cluster.local."))
	if err != nil {
		t.Fatalf("DNS over UDP: %v", err)
	}
	var p dnsmessage.Parser
	if _, err := p.Start(reply); err != nil {
		t.Fatalf("reply is not DNS: %v", err)
	}
	_ = p.SkipAllQuestions()
	ans, err := p.AllAnswers()
	if err != nil || len(ans) != 1 || ans[0].Body.(*dnsmessage.AResource).A != backend.DNSAnswer.As4() {
		t.Errorf("DNS answers = %+v, %v", ans, err)
	}

	// Many flows at once, each from its own client port, each answered
	// to the right client; datagrams stay whole.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			msg := []byte(fmt.Sprintf("flow %d %s", i, strings.Repeat("x", i*200)))
			got, err := udpAsk(net.JoinHostPort(dns, "53"), msg)
			if err != nil {
				errs <- err
				return
			}
			if !strings.HasPrefix(string(got), "demo/dns-") || !strings.HasSuffix(string(got), " "+string(msg)) {
				errs <- fmt.Errorf("flow %d got %.60q", i, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Endpoints that are not pods, and an ExternalName the relay resolves.
	if body, err := f.get(t, "billing", 80); err != nil || !strings.HasPrefix(body, "pod=demo/billing") {
		t.Errorf("billing (not pods): %q, %v", body, err)
	}
	alias, err := c.Clientset.CoreV1().Services("demo").Get(t.Context(), "alias", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := f.get(t, "alias", int(alias.Spec.Ports[0].Port)); err != nil || !strings.HasPrefix(body, "pod=demo/alias") {
		t.Errorf("alias (ExternalName of localhost): %q, %v", body, err)
	}
	// The kubernetes Service: the API server answers its /version.
	k8s, _ := f.addr("kubernetes.default")
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + net.JoinHostPort(k8s, "443") + "/version")
	if err != nil {
		t.Errorf("kubernetes.default:443: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "gitVersion") {
			t.Errorf("kubernetes.default:443/version: %s %s", resp.Status, body)
		}
	}

	// Status says which ports go through the relay, and why.
	st := f.engine.Status()
	var dnsUDP *api.Port
	for _, fw := range st.Forwards {
		if fw.Namespace == "demo" && fw.Service == "dns" {
			for i := range fw.Ports {
				if fw.Ports[i].Protocol == "UDP" {
					dnsUDP = &fw.Ports[i]
				}
			}
		}
	}
	if dnsUDP == nil || !strings.Contains(dnsUDP.Relay, "via relay demo/kubefwd-relay-") || !strings.Contains(dnsUDP.Relay, "UDP") {
		t.Errorf("dns UDP port status = %+v", dnsUDP)
	}

	// One relay, admitted in a namespace that enforces restricted.
	pods := relayPods(t, c)
	if len(pods) != 1 || pods[0].Namespace != "demo" || pods[0].Annotations[relaypod.HostAnnotation] != "test-host" {
		t.Fatalf("relay pods = %d", len(pods))
	}
	ns, err := c.Clientset.CoreV1().Namespaces().Get(t.Context(), "demo", metav1.GetOptions{})
	if err != nil || ns.Labels[cluster.RestrictedLabel] != "restricted" {
		t.Fatalf("namespace demo does not enforce restricted: %v %v", ns.Labels, err)
	}
	// The enforcement is real: a pod that breaks the standard is refused.
	bad := relaypod.Spec("demo", "kubefwd/relay:test", "x", "h", 1, time.Now())
	bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	if _, err := c.Clientset.CoreV1().Pods("demo").Create(t.Context(), bad, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a pod breaking restricted was not refused: %v", err)
	}

	f.stop()
	// Deleted at stop; the kubelet (kwok) then ends it within its grace.
	for _, p := range relayPods(t, c) {
		if p.DeletionTimestamp == nil {
			t.Errorf("relay pod %s not deleted at a clean stop", p.Name)
		}
	}
	if err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		return len(relayPods(t, c)) == 0, nil
	}); err != nil {
		t.Errorf("%d relay pods left after a clean stop", len(relayPods(t, c)))
	}
}

// Without --relay nothing is created in the cluster, and what needs the
// relay says so.
func TestNoRelayCreatesNothing(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"demo"}})
	f.waitName(t, "dns")
	byName := map[string]api.Forward{}
	err := cluster.Poll(t.Context(), 20*time.Second, func(context.Context) (bool, error) {
		for _, fw := range f.engine.Status().Forwards {
			byName[fw.Service] = fw
		}
		return byName["billing"].State != "" && byName["external"].State != "" && byName["dns"].State == api.StateActive, nil
	})
	if err != nil {
		t.Fatalf("status never listed billing, external and dns: %v", byName)
	}
	for _, name := range []string{"billing", "external", "alias"} {
		if fw := byName[name]; fw.State != api.StateNotForwarded || !strings.Contains(fw.Reason, "--relay") {
			t.Errorf("%s: %s %q, want not forwarded pointing to --relay", name, fw.State, fw.Reason)
		}
	}
	if dns := byName["dns"]; len(dns.Skipped) != 1 || !strings.Contains(dns.Skipped[0], "--relay") {
		t.Errorf("dns skipped = %v", dns.Skipped)
	}
	time.Sleep(2 * time.Second)
	if got := relayPods(t, c); len(got) != 0 {
		t.Errorf("%d relay pods created without --relay", len(got))
	}
}

// A relay whose kubefwd was killed (its process is gone) is deleted by
// the next kubefwd that starts on the same machine; another instance's
// live relay is left alone.
func TestRelayOrphansCollected(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if err := c.CreateNamespace(ctx, "orphans"); err != nil {
		t.Fatal(err)
	}
	// A pid that surely is no process any more.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	orphan, err := c.Clientset.CoreV1().Pods("orphans").Create(ctx, relaypod.Spec("orphans", "kubefwd/relay:test", "dead", "test-host", dead, time.Now()), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Clientset.CoreV1().Pods("orphans").Create(ctx, relaypod.Spec("orphans", "kubefwd/relay:test", "alive", "another-host", dead, time.Now()), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startEngine(t, c, fwdOptions{namespaces: []string{"orphans"}, relay: engine.RelayOptions{Enabled: true, Image: "kubefwd/relay:test", Host: "test-host"}})
	err = cluster.Poll(ctx, 20*time.Second, func(context.Context) (bool, error) {
		_, err := c.Clientset.CoreV1().Pods("orphans").Get(ctx, orphan.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the orphaned relay %s was not collected", orphan.Name)
	}
	if _, err := c.Clientset.CoreV1().Pods("orphans").Get(ctx, other.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("another machine's live relay was deleted: %v", err)
	}
	// Nothing there needs a relay: none is created.
	for _, p := range relayPods(t, c) {
		if p.Namespace == "orphans" && p.Name != other.Name {
			t.Errorf("a relay was created with nothing to relay: %s", p.Name)
		}
	}
}

// Without the right to create pods, what needs the relay is not
// forwarded, with the reason; the rest is.
func TestRelayForbidden(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if _, err := c.CreateApp(ctx, "relayforbid", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "relayforbid", Name: "stats", Selector: "web",
		Ports: []corev1.ServicePort{cluster.UDPServicePort("stats", 8125)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "relayforbid", Name: "mixed", Selector: "web",
		Ports: []corev1.ServicePort{cluster.ServicePort("http", 80, intstr.FromString("http")), cluster.UDPServicePort("stats", 8125)}}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, _ := limitedUser(t, c, "relayforbid")
	f := startEngine(t, c, fwdOptions{kubeconfig: kubeconfig, contexts: []string{"limited"}, namespaces: []string{"relayforbid"},
		relay: engine.RelayOptions{Enabled: true, Image: "kubefwd/relay:test", Host: "test-host"}})
	f.waitName(t, "web")
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=relayforbid/web-") {
		t.Errorf("web: %q, %v", body, err)
	}
	var stats, mixed api.Forward
	err := cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		for _, fw := range f.engine.Status().Forwards {
			switch fw.Service {
			case "stats":
				stats = fw
			case "mixed":
				mixed = fw
			}
		}
		return strings.Contains(stats.Reason, "forbidden") && len(mixed.Skipped) > 0, nil
	})
	if err != nil {
		t.Fatalf("stats = %+v, mixed = %+v", stats, mixed)
	}
	if stats.State != api.StateNotForwarded || !strings.Contains(stats.Reason, "cannot create the relay") {
		t.Errorf("stats: %s %q", stats.State, stats.Reason)
	}
	if !slices.ContainsFunc(mixed.Skipped, func(s string) bool { return strings.Contains(s, "forbidden") }) || len(mixed.Ports) != 1 {
		t.Errorf("mixed: ports %+v skipped %v", mixed.Ports, mixed.Skipped)
	}
	mixedAddr := f.waitName(t, "mixed")
	if body, err := httpGet(net.JoinHostPort(mixedAddr, strconv.Itoa(80))); err != nil || !strings.HasPrefix(body, "pod=relayforbid/web-") {
		t.Errorf("mixed's TCP port: %q, %v", body, err)
	}
}

// UDP flows end once idle: their streams close, the relay's side ends with
// them, and nothing of them is left running.
func TestRelayUDPFlowsEnd(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	f := startEngine(t, c, fwdOptions{namespaces: []string{"demo"}, udpIdle: 500 * time.Millisecond,
		relay: engine.RelayOptions{Enabled: true, Image: "kubefwd/relay:test", Host: "test-host"}})
	dns := net.JoinHostPort(f.waitName(t, "dns.demo"), "53")
	if _, err := udpAsk(dns, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	flows := func() int64 {
		for _, fw := range f.engine.Status().Forwards {
			for _, p := range fw.Ports {
				if fw.Service == "dns" && p.Protocol == "UDP" {
					return p.Connections
				}
			}
		}
		return -1
	}
	idle := func() {
		t.Helper()
		if err := cluster.Poll(t.Context(), 20*time.Second, func(context.Context) (bool, error) { return flows() == 0, nil }); err != nil {
			t.Fatalf("flows still open: %d", flows())
		}
	}
	idle()
	before := ownGoroutines()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if _, err := udpAsk(dns, []byte(fmt.Sprintf("flow %d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := flows(); n < 1 {
		t.Errorf("open flows right after 30 clients: %d", n)
	}
	idle()
	// Their goroutines are gone too. The
	// relay's side is not counted: the devcluster runs it in this process,
	// and kwok does not close the pod side of a port-forward stream that
	// ended, so its flows end at its own idle limit, as they do in a real
	// relay whose kubefwd vanished.
	if err := cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		return ownGoroutines() <= before+2, nil
	}); err != nil {
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Errorf("goroutines: %d before 30 flows, %d after they ended:\n%s", before, ownGoroutines(), stacks.String())
	}
	// A client that comes back gets a new flow.
	if _, err := udpAsk(dns, []byte("again")); err != nil {
		t.Errorf("after the flows ended: %v", err)
	}
}

// ownGoroutines counts the goroutines of kubefwd's own packages but the
// relay's (the devcluster runs relay servers, and backends, in the test
// binary; client libraries' goroutines come and go with connections the
// harness makes too).
func ownGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "kubefwd/kubefwd/internal/") && !strings.Contains(g, "/internal/relay.") &&
			!strings.Contains(g, "/test/devcluster/") && !strings.Contains(g, "_test.") {
			n++
		}
	}
	return n
}
