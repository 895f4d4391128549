// Package tilt_test runs the Tilt integration against the devcluster: the
// start script as Tilt's serve_cmd would, and the namespace follower against
// a stand-in tilt that prints KubernetesDiscovery objects as Tilt does.
package tilt_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	// Not used directly: the test builds and runs the kubefwd binary, and
	// this import makes Go's test cache see changes to its code.
	_ "github.com/kubefwd/kubefwd/internal/cli"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// discovery renders a KubernetesDiscovery the way `tilt get -o json`
// does: kubectl-style indentation, the fields Tilt fills in.
func discovery(name string, namespaces ...string) string {
	var watches []string
	for i, ns := range namespaces {
		watches = append(watches, fmt.Sprintf(`                {
                    "name": "%s",
                    "namespace": "%s",
                    "uid": "0b6c8d1e-%04d-4c2a-9d55-6a1f4e2b7c%02d"
                }`, name, ns, i, i))
	}
	return fmt.Sprintf(`{
    "apiVersion": "tilt.dev/v1alpha1",
    "kind": "KubernetesDiscovery",
    "metadata": {
        "annotations": {
            "tilt.dev/resource": "%[1]s"
        },
        "creationTimestamp": "2026-11-21T09:00:00Z",
        "name": "%[1]s",
        "resourceVersion": "7",
        "uid": "5d2f1c3a-9e8b-4f7a-b6c5-d4e3f2a1b0c9"
    },
    "spec": {
        "extraSelectors": [
            {
                "matchLabels": {
                    "app": "%[1]s"
                }
            }
        ],
        "watches": [
%[2]s
        ]
    },
    "status": {
        "monitorStartTime": "2026-11-21T09:00:01.000000Z",
        "pods": []
    }
}
`, name, strings.Join(watches, ",\n"))
}

func list(items ...string) string {
	for i, it := range items {
		items[i] = strings.ReplaceAll(strings.TrimSpace(it), "\n", "\n    ")
	}
	body := ""
	if len(items) > 0 {
		body = "\n        " + strings.Join(items, ",\n        ") + "\n    "
	}
	return fmt.Sprintf("{\n    \"apiVersion\": \"v1\",\n    \"items\": [%s],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n", body)
}

func TestTiltIntegration(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubefwd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kubefwd/kubefwd/cmd/kubefwd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	hostsPath := filepath.Join(dir, "hosts")
	const original = "127.0.0.1 localhost\n"
	if err := os.WriteFile(hostsPath, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "tilt-state")
	if err := os.Mkdir(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"), "FAKE_TILT_DIR="+fake)

	// What Tilt's serve_cmd runs; prompt "auto" as root means none.
	start := exec.Command(filepath.Join(here, "kubefwd", "start-kubefwd.sh"), bin, "tilt-test", "auto",
		"-c", c.Kubeconfig, "--hosts-path", hostsPath, "--state-file", filepath.Join(dir, "state.json"), "--idle")
	start.Env = env
	start.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Tilt signals the process group
	startLog := &clustertest.Buffer{}
	start.Stdout, start.Stderr = startLog, startLog
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- start.Wait() }()
	defer func() { syscall.Kill(-start.Process.Pid, syscall.SIGKILL) }()

	// The follower, before Tilt answers: it waits.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	follow := exec.CommandContext(ctx, bin, "namespaces", "follow-tilt", "--instance", "tilt-test", "--tilt", filepath.Join(here, "testdata", "tilt"))
	follow.Env = env
	followLog := &clustertest.Buffer{}
	follow.Stdout, follow.Stderr = followLog, followLog
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); follow.Wait() }()

	// Tilt deploys web to demo2.
	publish := func(items ...string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(fake, "list.json"), []byte(list(items...)), 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(filepath.Join(fake, "watch.json"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for _, it := range items {
			if _, err := io.WriteString(w, it); err != nil {
				t.Fatal(err)
			}
		}
		if len(items) == 0 { // a deletion shows as the object printed again
			_, _ = io.WriteString(w, discovery("web"))
		}
	}
	publish(discovery("web", "demo2"))
	clustertest.WaitAnswers(t, hostsPath, "web", "demo2", followLog, startLog)

	// Then a second resource in demo: both namespaces, demo first.
	publish(discovery("web", "demo2"), discovery("api", "demo"))
	clustertest.WaitAnswers(t, hostsPath, "web", "demo", followLog, startLog)
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", followLog, startLog)

	// The Refresh button's command.
	cmd := exec.Command(bin, "refresh", "--instance", "tilt-test")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("refresh: %v\n%s", err, out)
	}
	clustertest.WaitAnswers(t, hostsPath, "web", "demo", followLog, startLog)

	// Tilt down: nothing deployed, nothing forwarded.
	publish()
	err = cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(hostsPath)
		return !strings.Contains(string(data), " web"), nil
	})
	if err != nil {
		data, _ := os.ReadFile(hostsPath)
		t.Fatalf("entries left after Tilt stopped deploying:\n%s\nfollower:\n%s", data, followLog.String())
	}

	// Tilt stops the resource: SIGTERM to the group; kubefwd is stopped
	// through its socket and cleans up.
	if err := syscall.Kill(-start.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("start script: %v\n%s", err, startLog.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("kubefwd did not stop\n%s", startLog.String())
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != original {
		t.Errorf("hosts file after stop:\n%s", data)
	}
}
