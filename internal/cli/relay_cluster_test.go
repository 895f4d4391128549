package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefwd/kubefwd/internal/relaypod"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// kill -9 of kubefwd svc --relay leaves its relay pod behind; the next
// kubefwd started here deletes it (its owner's process is gone) and runs
// its own; a clean stop then deletes that one.
func TestRelayCollectedAfterKill9(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if _, err := c.CreateApp(ctx, "relaykill", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "relaykill", Name: "stats", Selector: "web",
		Ports: []corev1.ServicePort{cluster.UDPServicePort("stats", 8125)}}); err != nil {
		t.Fatal(err)
	}
	relays := func() []corev1.Pod {
		list, err := c.Clientset.CoreV1().Pods("relaykill").List(ctx, metav1.ListOptions{LabelSelector: relaypod.Selector})
		if err != nil {
			t.Fatal(err)
		}
		var live []corev1.Pod
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		return live
	}
	waitRelays := func(what string, ok func([]corev1.Pod) bool) []corev1.Pod {
		t.Helper()
		var got []corev1.Pod
		if err := cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
			got = relays()
			return ok(got), nil
		}); err != nil {
			t.Fatalf("relay pods never %s: %d", what, len(got))
		}
		return got
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	args := []string{"-n", "relaykill", "--relay", "--relay-image", "kubefwd/relay:test"}

	first := startInstance(t, c, hostsPath, state, args...)
	orphan := waitRelays("appeared", func(p []corev1.Pod) bool { return len(p) == 1 })[0]
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.cmd.Wait()
	if got := relays(); len(got) != 1 || got[0].Name != orphan.Name {
		t.Fatalf("kill -9 left no relay behind; the test proves nothing")
	}

	second := startInstance(t, c, hostsPath, state, args...)
	mine := waitRelays("became only the new instance's", func(p []corev1.Pod) bool { return len(p) == 1 && p[0].Name != orphan.Name })[0]
	if !strings.Contains(second.stderr.String(), "orphaned relay pod deleted") || !strings.Contains(second.stderr.String(), orphan.Name) {
		t.Errorf("the orphan's removal was not reported:\n%s", second.stderr.String())
	}
	if err := second.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := second.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v\n%s", err, second.stderr.String())
	}
	for _, p := range relays() {
		if p.Name == mine.Name {
			t.Errorf("relay %s not deleted at a clean stop", p.Name)
		}
	}
}
