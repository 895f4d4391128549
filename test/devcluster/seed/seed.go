// Package seed fills a devcluster with the workloads that the demo, the tests
// and the benchmarks expect, and waits until every seeded Service has ready,
// backed endpoints.
package seed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
)

// MaxScale bounds scale:NxM so a typo cannot ask for a million Services.
const MaxScale = 20000

// Spec is a parsed seed.
type Spec struct {
	Name string // "demo" or "scale"
	// Namespaces and ServicesPerNamespace are set for "scale".
	Namespaces, ServicesPerNamespace int
}

// Parse reads "demo" or "scale:NxM" (N namespaces of M Services each).
func Parse(s string) (Spec, error) {
	switch {
	case s == "demo":
		return Spec{Name: "demo"}, nil
	case strings.HasPrefix(s, "scale:"):
		n, m, ok := strings.Cut(strings.TrimPrefix(s, "scale:"), "x")
		if !ok {
			return Spec{}, fmt.Errorf("seed %q: want scale:NxM, e.g. scale:5x100", s)
		}
		ns, err1 := strconv.Atoi(n)
		svcs, err2 := strconv.Atoi(m)
		if err1 != nil || err2 != nil || ns < 1 || svcs < 1 {
			return Spec{}, fmt.Errorf("seed %q: N and M must be positive integers, e.g. scale:5x100", s)
		}
		if ns > MaxScale || svcs > MaxScale || ns*svcs > MaxScale { // each first: the product may overflow
			return Spec{}, fmt.Errorf("seed %q: %d Services is more than the limit of %d", s, ns*svcs, MaxScale)
		}
		return Spec{Name: "scale", Namespaces: ns, ServicesPerNamespace: svcs}, nil
	default:
		return Spec{}, fmt.Errorf("unknown seed %q: want demo or scale:NxM", s)
	}
}

// String is the seed's spelling on the command line.
func (s Spec) String() string {
	if s.Name == "scale" {
		return fmt.Sprintf("scale:%dx%d", s.Namespaces, s.ServicesPerNamespace)
	}
	return s.Name
}

// Apply creates the seed's objects and waits until they are ready and backed.
func Apply(ctx context.Context, c *cluster.Cluster, s Spec) error {
	switch s.Name {
	case "demo":
		return demo(ctx, c)
	case "scale":
		return scale(ctx, c, s.Namespaces, s.ServicesPerNamespace)
	}
	return fmt.Errorf("unknown seed %q", s.Name)
}

// OutsideAddress is where the demo's billing Service's EndpointSlice
// points: an address of the cluster's network that is not a pod.
const OutsideAddress = "192.0.2.10:8080"

// readiness is one Service to wait for and how many ready endpoints it needs.
type readiness struct {
	ns, name string
	want     int
}

func demo(ctx context.Context, c *cluster.Cluster) error {
	for _, ns := range []string{"demo", "demo2"} {
		if err := c.CreateNamespace(ctx, ns); err != nil {
			return err
		}
	}
	// The relay pod of `kubefwd svc -n demo --relay` runs here: the API
	// server refuses it if it breaks the restricted standard.
	if err := c.Restrict(ctx, "demo"); err != nil {
		return err
	}
	http := cluster.ContainerPort("http", 8080)
	steps := []func() error{
		func() error { _, err := c.CreateDeployment(ctx, "demo", "web", 2, http); return err },
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "web", Selector: "web",
				Ports: []corev1.ServicePort{cluster.ServicePort("http", 80, intstr.FromString("http"))}})
			return err
		},
		func() error { _, err := c.CreateDeployment(ctx, "demo", "api", 1, http); return err },
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "api", Selector: "api",
				Ports: []corev1.ServicePort{cluster.ServicePort("http", 8080, intstr.FromInt32(8080))}})
			return err
		},
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "db", Selector: "db", Headless: true,
				Ports: []corev1.ServicePort{cluster.ServicePort("postgres", 5432, intstr.FromInt32(5432))}})
			return err
		},
		func() error {
			_, err := c.CreateStatefulSet(ctx, "demo", "db", "db", 2, cluster.ContainerPort("postgres", 5432))
			return err
		},
		func() error {
			_, err := c.CreateDeployment(ctx, "demo", "cache", 1, cluster.ContainerPort("redis", 6379))
			return err
		},
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "cache", Selector: "cache",
				Ports: []corev1.ServicePort{cluster.ServicePort("redis", 6379, intstr.FromInt32(6379))}})
			return err
		},
		func() error {
			_, err := c.CreateDeployment(ctx, "demo", "dns", 1, cluster.ContainerPort("dns-tcp", 53),
				corev1.ContainerPort{Name: "dns-udp", ContainerPort: 53, Protocol: corev1.ProtocolUDP})
			return err
		},
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "dns", Selector: "dns",
				Ports: []corev1.ServicePort{cluster.ServicePort("dns-tcp", 53, intstr.FromInt32(53)), cluster.UDPServicePort("dns-udp", 53)}})
			return err
		},
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "external", ExternalName: "example.com",
				Ports: []corev1.ServicePort{cluster.ServicePort("https", 443, intstr.FromInt32(443))}})
			return err
		},
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "legacy",
				Ports: []corev1.ServicePort{cluster.ServicePort("http", 8080, intstr.FromInt32(8080))}})
			return err
		},
		// Beyond port-forward, for --relay: endpoints that are not pods (an
		// address of the cluster's network, served here), and an alias of
		// a name the relay resolves (localhost, where a server listens).
		func() error {
			return c.CreateOutsideService(ctx, "demo", "billing", "http", 80, OutsideAddress)
		},
		func() error {
			port, err := c.ServeLocal("demo", "alias")
			if err != nil {
				return err
			}
			_, err = c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo", Name: "alias", ExternalName: "localhost",
				Ports: []corev1.ServicePort{cluster.ServicePort("http", port, intstr.FromInt32(port))}})
			return err
		},
		func() error { _, err := c.CreateDeployment(ctx, "demo2", "web", 1, http); return err },
		func() error {
			_, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "demo2", Name: "web", Selector: "web",
				Ports: []corev1.ServicePort{cluster.ServicePort("http", 80, intstr.FromString("http"))}})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	// legacy's hand-made EndpointSlice needs a running api pod (its IP).
	apiPods, err := c.WaitServiceReady(ctx, "demo", "api", 1, time.Minute)
	if err != nil {
		return err
	}
	pod, err := c.Clientset.CoreV1().Pods("demo").Get(ctx, apiPods[0], metav1.GetOptions{})
	if err != nil {
		return err
	}
	if _, err := c.CreateEndpointSliceForPod(ctx, "demo", "legacy", pod, "http", 8080); err != nil {
		return err
	}
	return waitAll(ctx, c, []readiness{
		{"demo", "web", 2}, {"demo", "api", 1}, {"demo", "db", 2}, {"demo", "cache", 1},
		{"demo", "dns", 1}, {"demo", "legacy", 1}, {"demo2", "web", 1},
	})
}

func scale(ctx context.Context, c *cluster.Cluster, namespaces, services int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	var want []readiness
	for i := range namespaces {
		ns := fmt.Sprintf("scale%d", i)
		if err := c.CreateNamespace(ctx, ns); err != nil {
			return err
		}
		for j := range services {
			name := fmt.Sprintf("s%d", j)
			want = append(want, readiness{ns, name, 1})
			// Already there (a smaller scale seeded before) is fine: scale
			// seeds grow into each other, as the benchmarks use them.
			g.Go(func() error {
				if _, err := c.CreateDeployment(gctx, ns, name, 1, cluster.ContainerPort("http", 8080)); err != nil && !apierrors.IsAlreadyExists(err) {
					return err
				}
				_, err := c.CreateService(gctx, cluster.ServiceSpec{Namespace: ns, Name: name, Selector: name,
					Ports: []corev1.ServicePort{cluster.ServicePort("http", 8080, intstr.FromInt32(8080))}})
				if apierrors.IsAlreadyExists(err) {
					return nil
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return waitAll(ctx, c, want)
}

// waitAll waits for every Service, then proves the last backed pod answers
// through the real port-forward path: kwok sees PortForwards in the order
// they were written, so once the last works, all do.
func waitAll(ctx context.Context, c *cluster.Cluster, want []readiness) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, r := range want {
		g.Go(func() error {
			_, err := c.WaitServiceReady(gctx, r.ns, r.name, r.want, 3*time.Minute)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	ns, pod, port, ok := c.LastBacked()
	if !ok {
		return errors.New("no pod was backed")
	}
	return cluster.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.PortForwardGet(ctx, ns, pod, port, "/")
		return err == nil, nil
	})
}
