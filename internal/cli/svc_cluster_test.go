package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// syncBuffer is a strings.Builder safe to read while Main writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A context that cannot be reached is reported and skipped; the others are
// forwarded, and a cancelled run exits 0 with the hosts file as it was.
func TestSvcDeadContextDoesNotStopOthers(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	if _, err := c.CreateApp(ctx, "mixed", "web", 1, 80); err != nil {
		t.Fatal(err)
	}

	// One kubeconfig: a dead context first, the live cluster second.
	dir := t.TempDir()
	live, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := clientcmd.Load([]byte(deadKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range dead.Clusters {
		live.Clusters[k] = v
	}
	for k, v := range dead.AuthInfos {
		live.AuthInfos[k] = v
	}
	for k, v := range dead.Contexts {
		live.Contexts[k] = v
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*live, kubeconfig); err != nil {
		t.Fatal(err)
	}
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Main(runCtx, []string{"-c", kubeconfig, "-x", "dead", "-x", c.Context, "-n", "mixed",
			"--hosts-path", hostsPath, "--state-file", filepath.Join(dir, "state.json")},
			Streams{In: strings.NewReader(""), Out: &strings.Builder{}, Err: &stderr})
	}()
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(hostsPath)
		return strings.Contains(string(data), " web.mixed."+c.Context+" "), nil
	})
	if err != nil {
		t.Fatalf("the live context was not forwarded; stderr:\n%s", stderr.String())
	}
	if out := stderr.String(); !strings.Contains(out, "context=dead") || !strings.Contains(out, "cannot reach the API server") {
		t.Errorf("the dead context was not reported; stderr:\n%s", stderr.String())
	}
	cancel()
	select {
	case got := <-code:
		if got != ExitOK {
			t.Errorf("exit %d after cancel, want 0; stderr:\n%s", got, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("kubefwd did not stop within 10s")
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file after exit:\n%s", data)
	}
}
