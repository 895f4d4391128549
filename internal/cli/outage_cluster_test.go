package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// After an API server outage of half a minute, kubefwd follows the cluster
// again as soon as the server is back: a Service created right after the
// return gets its name within seconds. client-go's reflector would wait out
// a backoff grown during the outage (up to a minute) before watching again.
func TestFollowsClusterRightAfterOutage(t *testing.T) {
	c := clustertest.New(t) // its apiserver is stopped: not the shared cluster
	if _, err := c.CreateApp(t.Context(), "outage", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, c, hostsPath, filepath.Join(dir, "state.json"), "-n", "outage")
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")

	if err := c.StopAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(35 * time.Second) // long enough for the reflector's backoff to reach its cap
	if err := c.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Only the Service: its name needs no pod, so this waits on kubefwd's
	// watch alone, not on the cluster's controllers (which back off too).
	if _, err := c.CreateService(t.Context(), cluster.ServiceSpec{Namespace: "outage", Name: "api", Selector: "api",
		Ports: []corev1.ServicePort{cluster.ServicePort("http", 8080, intstr.FromInt32(8080))}}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	const bound = 10 * time.Second
	err := cluster.Poll(t.Context(), bound, func(_ context.Context) (bool, error) {
		data, _ := os.ReadFile(hostsPath)
		return strings.Contains(string(data), " api "), nil
	})
	if err != nil {
		t.Fatalf("a Service created after the outage had no name %s later (kubefwd was not watching yet):\n%s", time.Since(created).Round(time.Second), in.stderr.String())
	}
}
