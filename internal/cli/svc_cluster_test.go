package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

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
	var stderr clustertest.Buffer
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

// kubefwdBinary builds kubefwd once per test binary.
var built struct {
	sync.Once
	path string
	err  error
}

func kubefwdBinary(t *testing.T) string {
	t.Helper()
	built.Do(func() {
		dir, err := os.MkdirTemp("", "kubefwd-bin-")
		if err != nil {
			built.err = err
			return
		}
		// Other users (runuser nobody) run it too.
		if err := os.Chmod(dir, 0o755); err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "kubefwd")
		out, err := exec.Command("go", "build", "-o", built.path, "github.com/kubefwd/kubefwd/cmd/kubefwd").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// instance is a kubefwd process.
type instance struct {
	cmd    *exec.Cmd
	stderr *clustertest.Buffer
}

func startInstance(t *testing.T, c *cluster.Cluster, hostsPath, state string, args ...string) *instance {
	t.Helper()
	return startInstanceEnv(t, c, nil, hostsPath, state, args...)
}

// startInstanceEnv starts kubefwd svc with env (nil: this process's).
func startInstanceEnv(t *testing.T, c *cluster.Cluster, env []string, hostsPath, state string, args ...string) *instance {
	t.Helper()
	return startInstanceKubeconfig(t, c.Kubeconfig, env, hostsPath, state, args...)
}

func startInstanceKubeconfig(t *testing.T, kubeconfig string, env []string, hostsPath, state string, args ...string) *instance {
	t.Helper()
	all := append([]string{"svc", "-c", kubeconfig, "--hosts-path", hostsPath, "--state-file", state}, args...)
	cmd := exec.Command(kubefwdBinary(t), all...)
	cmd.Env = env
	in := &instance{cmd: cmd, stderr: &clustertest.Buffer{}}
	cmd.Stderr = in.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return in
}

func waitHosts(t *testing.T, path string, cond func(string) bool, what string) {
	t.Helper()
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(path)
		return cond(string(data)), nil
	})
	if err != nil {
		data, _ := os.ReadFile(path)
		t.Fatalf("hosts file never %s:\n%s", what, data)
	}
}

// kill -9 leaves the block behind; the next start removes it and says so,
// and after a clean stop the user's file is byte for byte what it was.
func TestStaleBlockRemovedAfterKill9(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "crash", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	original := "127.0.0.1\tlocalhost\r\n# the user's own comment\r\n10.1.2.3 corp-proxy"
	if err := os.WriteFile(hostsPath, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")

	first := startInstance(t, c, hostsPath, state, "-n", "crash")
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.cmd.Wait()
	if data, _ := os.ReadFile(hostsPath); !strings.Contains(string(data), "# kubefwd begin") {
		t.Fatal("kill -9 left no block behind; the test proves nothing")
	}

	second := startInstance(t, c, hostsPath, state, "-n", "crash")
	mine := fmt.Sprintf(" pid=%d ", second.cmd.Process.Pid)
	waitHosts(t, hostsPath, func(s string) bool {
		return strings.Count(s, "# kubefwd begin") == 1 && strings.Contains(s, mine) && strings.Contains(s, " web ")
	}, "held only the new instance's block")
	if !strings.Contains(second.stderr.String(), "removed hosts entries left by a kubefwd that is no longer running") {
		t.Errorf("the stale block's removal was not reported:\n%s", second.stderr.String())
	}
	if err := second.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := second.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v\n%s", err, second.stderr.String())
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != original {
		t.Errorf("hosts file after the clean stop:\n%q\nwant\n%q", data, original)
	}
}

// Two instances on different namespaces keep their own blocks; stopping
// one leaves the other's.
func TestTwoInstances(t *testing.T) {
	c := clustertest.Shared(t)
	for _, ns := range []string{"inst-a", "inst-b"} {
		if _, err := c.CreateApp(t.Context(), ns, "web", 1, 80); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startInstance(t, c, hostsPath, filepath.Join(dir, "a.json"), "-n", "inst-a")
	b := startInstance(t, c, hostsPath, filepath.Join(dir, "b.json"), "-n", "inst-b")
	waitHosts(t, hostsPath, func(s string) bool {
		return strings.Count(s, "# kubefwd begin") == 2 && strings.Contains(s, " web.inst-a ") && strings.Contains(s, " web.inst-b ")
	}, "held both instances' blocks")
	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("instance a: %v", err)
	}
	data, _ := os.ReadFile(hostsPath)
	if strings.Contains(string(data), "web.inst-a") || !strings.Contains(string(data), " web.inst-b ") {
		t.Errorf("after stopping a:\n%s", data)
	}
	b.cmd.Process.Signal(os.Interrupt)
	b.cmd.Wait()
	if data, _ := os.ReadFile(hostsPath); string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("after stopping both:\n%s", data)
	}
}

// Two signals in a row: whichever path ends the process, the hosts file is
// left clean.
func TestTwoSignalsLeaveHostsClean(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "signals", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, c, hostsPath, filepath.Join(dir, "state.json"), "-n", "signals")
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")
	in.cmd.Process.Signal(os.Interrupt)
	in.cmd.Process.Signal(os.Interrupt)
	in.cmd.Wait()
	if data, _ := os.ReadFile(hostsPath); string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file after two signals:\n%s", data)
	}
}

// Whoever read kubefwd's output is gone (the terminal closed, Tilt killed,
// `| head` done): its next log lines must not kill it before it removes its
// hosts entries.
func TestClosedOutputLeavesHostsClean(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "closedout", "web", 1, 80); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubefwdBinary(t), "svc", "-c", c.Kubeconfig, "--hosts-path", hostsPath,
		"--state-file", filepath.Join(dir, "state.json"), "-n", "closedout")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitHosts(t, hostsPath, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")
	r.Close() // the reader goes away; shutting down logs several lines
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if data, _ := os.ReadFile(hostsPath); string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file after stopping with its output closed (%v):\n%s", err, data)
	}
	if err != nil {
		t.Errorf("kubefwd with its output closed: %v", err)
	}
}

// The selection and address flags, each doing its job on a real cluster:
// -l and -f choose Services, -m moves a port, -r and -z pin addresses,
// --pin-first sends every connection to one pod.
func TestSelectionAndAddressFlags(t *testing.T) {
	c := clustertest.Shared(t)
	if _, err := c.CreateApp(t.Context(), "flags", "web", 2, 80); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(t.Context(), "flags", "api", 1, 80); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	newHosts := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// web only, by label; port 80 on 8081; a pinned address; one pod.
	hostsA := newHosts("hosts-a")
	a := startInstance(t, c, hostsA, filepath.Join(dir, "state-a.json"), "-n", "flags",
		"-l", "app=web", "-m", "80:8081", "-r", "web:127.77.0.9", "--pin-first")
	waitHosts(t, hostsA, func(s string) bool { return strings.Contains(s, " web ") }, "listed web")
	if got := clustertest.HostsAddr(hostsA, "web"); got != "127.77.0.9" {
		t.Errorf("-r web:127.77.0.9: web is at %q", got)
	}
	if got := clustertest.HostsAddr(hostsA, "api"); got != "" {
		t.Errorf("-l app=web: api is forwarded too, at %s", got)
	}
	if _, err := clustertest.Get("127.77.0.9", 80); err == nil {
		t.Error("-m 80:8081: port 80 still answers")
	}
	pods := map[string]bool{}
	for range 12 {
		body, err := clustertest.Get("127.77.0.9", 8081)
		if err != nil || !strings.HasPrefix(body, "pod=flags/web-") {
			t.Fatalf("-m 80:8081: %q, %v\n%s", body, err, a.stderr.String())
		}
		pods[body] = true
	}
	if len(pods) != 1 {
		t.Errorf("--pin-first: 12 connections reached %d pods, want 1: %v", len(pods), pods)
	}

	// api only, by field; its address from a -z file.
	conf := filepath.Join(dir, "fwd.yaml")
	if err := os.WriteFile(conf, []byte("serviceConfigurations:\n  - name: api\n    ip: 127.77.0.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostsB := newHosts("hosts-b")
	b := startInstance(t, c, hostsB, filepath.Join(dir, "state-b.json"), "-n", "flags",
		"-f", "metadata.name=api", "-z", conf)
	waitHosts(t, hostsB, func(s string) bool { return strings.Contains(s, " api ") }, "listed api")
	if got := clustertest.HostsAddr(hostsB, "api"); got != "127.77.0.10" {
		t.Errorf("-z (api: 127.77.0.10): api is at %q", got)
	}
	if got := clustertest.HostsAddr(hostsB, "web"); got != "" {
		t.Errorf("-f metadata.name=api: web is forwarded too, at %s", got)
	}
	if body, err := clustertest.Get("127.77.0.10", 80); err != nil || !strings.HasPrefix(body, "pod=flags/api-") {
		t.Errorf("api at its -z address: %q, %v\n%s", body, err, b.stderr.String())
	}
}
