package cli

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// A Service that appears while kubefwd runs keeps its address across a
// kill -9 and a restart from the same state file: the state is saved as
// it changes, not only at a clean stop. The stale block of the killed run
// is replaced, not kept beside the new one.
//
// Without the saved state a new key's address comes from its hash, which
// would usually give the same address by luck; so the range is five
// addresses (-z baseUnreservedIP), and the new Service's hash slot is taken
// by another Service during the first run and free in the second. Only a
// saved state then gives it the same address.
func TestNewServiceKeepsAddressAfterKill9(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	const ns = "statekill"
	if _, err := c.CreateApp(ctx, ns, "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	const first, size = 250, 5 // 127.255.255.250 to .254
	slot := func(name string) int {
		h := fnv.New32a()
		h.Write([]byte(c.Context + "/" + ns + "/" + name))
		return int(h.Sum32() % size)
	}
	fresh := ""
	for i := 0; fresh == ""; i++ {
		if name := fmt.Sprintf("fresh-%d", i); slot(name) == slot("web") {
			fresh = name
		}
	}
	taken := fmt.Sprintf("127.255.255.%d", first+slot("web"))

	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	original := "127.0.0.1 localhost\n"
	if err := os.WriteFile(hostsPath, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "fwd.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("baseUnreservedIP: 127.255.255.%d\n", first)), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")

	killed := startInstance(t, c, hostsPath, state, "-n", ns, "-z", conf)
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")
	if got := clustertest.HostsAddr(hostsPath, "web"); got != taken {
		t.Fatalf("web is at %s, want its hash slot %s; the test proves nothing", got, taken)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: ns, Name: fresh, Selector: "web",
		Ports: []corev1.ServicePort{cluster.ServicePort("http", 80, intstr.FromString("http"))}}); err != nil {
		t.Fatal(err)
	}
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " "+fresh+" ") }, "listed "+fresh)
	want := clustertest.HostsAddr(hostsPath, fresh)
	if want == taken || want == "" {
		t.Fatalf("%s is at %q, beside web at %s; the test proves nothing", fresh, want, taken)
	}
	// Saves are batched (500 ms): a name in the hosts file is on disk
	// within about a second.
	err := cluster.Poll(ctx, 10*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(state)
		return strings.Contains(string(data), "/"+ns+"/"+fresh+`"`), nil
	})
	if err != nil {
		data, _ := os.ReadFile(state)
		t.Fatalf("the state file never held %s while kubefwd ran:\n%s\n%s", fresh, data, killed.stderr.String())
	}
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.cmd.Wait()

	// web goes away: the second run finds fresh's hash slot free.
	if err := c.Clientset.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := startInstance(t, c, hostsPath, state, "-n", ns, "-z", conf)
	mine := fmt.Sprintf(" pid=%d ", again.cmd.Process.Pid)
	waitHosts(t, hostsPath, func(s string) bool {
		return strings.Count(s, "# kubefwd begin") == 1 && strings.Contains(s, mine) && strings.Contains(s, " "+fresh+" ")
	}, "held only the new instance's block, with "+fresh)
	if got := clustertest.HostsAddr(hostsPath, fresh); got != want {
		data, _ := os.ReadFile(hostsPath)
		t.Errorf("after kill -9 and a restart %s is at %s, want %s as before:\n%s", fresh, got, want, data)
	}
	if got := clustertest.HostsAddr(hostsPath, "web"); got != "" {
		t.Errorf("the deleted web is still in the hosts file, at %s", got)
	}
	if err := again.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := again.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v\n%s", err, again.stderr.String())
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != original {
		t.Errorf("hosts file after the clean stop:\n%q\nwant %q", data, original)
	}
}
