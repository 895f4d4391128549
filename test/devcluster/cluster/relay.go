package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefwd/kubefwd/internal/relay"
	"github.com/kubefwd/kubefwd/test/devcluster/backend"
)

// relayBackend is kubefwd's relay server (what `kubefwd relay` runs in
// the relay pod) standing in for a relay pod's container. It runs in the
// harness because what it dials is this cluster's network, which does not
// exist on this machine: pod IPs and EndpointSlice addresses (the API
// server refuses loopback ones) are mapped to the local servers behind
// them by dialCluster. Names are resolved by this machine's resolver.
type relayBackend struct {
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *backends) startRelay(log io.Writer) (*relayBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay backend: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &relayBackend{ln: ln, cancel: cancel, done: make(chan struct{})}
	srv := &relay.Server{Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), Dial: b.dialCluster}
	go func() {
		defer close(r.done)
		_ = srv.Serve(ctx, ln)
	}()
	return r, nil
}

func (r *relayBackend) port() int32 { return int32(r.ln.Addr().(*net.TCPAddr).Port) }

func (r *relayBackend) close() {
	r.cancel()
	<-r.done
}

// MapAddress makes the relay reach local when it is asked for cluster (both
// host:port; network "tcp" or "udp"): a Service whose EndpointSlice names
// an address of the cluster's network, served here by a local server.
func (c *Cluster) MapAddress(network, cluster, local string) {
	c.backends.mapAddress(network, cluster, local)
}

func (b *backends) mapAddress(network, cluster, local string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.network[network+" "+cluster] = local
}

// dialCluster dials address as a pod of this cluster would: a pod's IP
// reaches that pod's backend for the port, a mapped address its local
// server, anything else (a name) is dialled as it is.
func (b *backends) dialCluster(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	if local, ok := b.localFor(network, address); ok {
		return d.DialContext(ctx, network, local)
	}
	return d.DialContext(ctx, network, address)
}

func (b *backends) localFor(network, address string) (string, bool) {
	b.mu.Lock()
	local, ok := b.network[network+" "+address]
	b.mu.Unlock()
	if ok {
		return local, true
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return "", false
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", false
	}
	if network == "tcp" {
		if local, ok := b.apiServerFor(address); ok {
			return local, true
		}
	}
	pods, err := b.podList()
	if err != nil {
		return "", false
	}
	for _, p := range pods {
		if p.Status.PodIP != host || p.DeletionTimestamp != nil {
			continue
		}
		b.mu.Lock()
		pb := b.state[p.Namespace+"/"+p.Name]
		b.mu.Unlock()
		if pb == nil || pb.uid != p.UID {
			continue
		}
		if network == "udp" {
			for _, u := range pb.udp {
				if u.PodPort() == int32(port) {
					return u.Addr(), true
				}
			}
			continue
		}
		for _, s := range pb.servers {
			if s.PodPort() == int32(port) {
				return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(s.Port()))), true
			}
		}
	}
	return "", false
}

// apiServerFor says whether address is what the API server publishes for
// the kubernetes Service, and then where it listens here.
func (b *backends) apiServerFor(address string) (string, bool) {
	if b.apiPort == "" {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	es, err := b.client.DiscoveryV1().EndpointSlices(corev1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return "", false
	}
	for _, ep := range es.Endpoints {
		for _, addr := range ep.Addresses {
			for _, p := range es.Ports {
				if p.Port != nil && net.JoinHostPort(addr, strconv.Itoa(int(*p.Port))) == address {
					return net.JoinHostPort("127.0.0.1", b.apiPort), true
				}
			}
		}
	}
	return "", false
}

// serveOutside starts a backend server that stands for something outside
// the pods (stopped with the cluster); it returns its address.
func (b *backends) serveOutside(ns, name string, port int32) (string, error) {
	srv, err := backend.Start(ns, name, port)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.outside = append(b.outside, srv)
	b.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(srv.Port()))), nil
}
