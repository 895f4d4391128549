// Package tilt_test runs the Tilt integration against the devcluster: the
// start script as Tilt's serve_cmd would, and the namespace follower against
// a stand-in tilt that prints what a real Tilt printed (captured once, in
// internal/tilt/testdata).
package tilt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	// Not used directly: the test builds and runs the kubefwd binary, and
	// this import makes Go's test cache see changes to its code.
	_ "github.com/kubefwd/kubefwd/internal/cli"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
	"github.com/kubefwd/kubefwd/test/needs"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// The real Tilt output: a project holding a Namespace "tiltns", a
// Deployment and Service "shop" in it (Tilt's first resource), and "web" in
// demo2 (its third). Tilt lists the Namespace object under "default".
const (
	capturedList  = "../../internal/tilt/testdata/get-namespace-project.json"
	capturedWatch = "../../internal/tilt/testdata/watch-kubernetesdiscovery.json"
	emptyList     = `{"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}}` + "\n"
)

// fakeTilt is the state the stand-in tilt prints.
type fakeTilt struct {
	t   *testing.T
	dir string
}

// publish makes list the answer to `tilt get` and signals a change on the
// watch, as Tilt does when it deploys or a pod changes.
func (f fakeTilt) publish(list []byte, watchEvent []byte) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "list.json.tmp"), list, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(f.dir, "list.json.tmp"), filepath.Join(f.dir, "list.json")); err != nil {
		f.t.Fatal(err)
	}
	w, err := os.OpenFile(filepath.Join(f.dir, "watch.json"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(watchEvent); err != nil {
		f.t.Fatal(err)
	}
}

// process is a command started as Tilt starts its serve_cmds: in its own
// process group, which Tilt signals to stop it.
type process struct {
	cmd    *exec.Cmd
	log    *clustertest.Buffer
	exited chan error
}

func startGroup(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), log: &clustertest.Buffer{}, exited: make(chan error, 1)}
	p.cmd.Env = env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
	return p
}

// stop is Tilt stopping the resource: SIGTERM to the group, then waiting.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		if err != nil {
			t.Errorf("%s: %v\n%s", p.cmd.Path, err, p.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop\n%s", p.cmd.Path, p.log.String())
	}
}

func (p *process) String() string { return p.log.String() }

func TestTiltIntegration(t *testing.T) {
	// The start script's prompt "auto" runs kubefwd as it is only for root
	// (or a user the helper allows); anyone else would get a sudo prompt.
	needs.Root(t, "to run kubefwd without a privilege prompt")
	c := clustertest.Seeded(t, "demo")
	ctx := t.Context()
	// What the captured project deployed (demo2/web is in the seed).
	if err := c.CreateNamespace(ctx, "tiltns"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDeployment(ctx, "tiltns", "shop", 1, cluster.ContainerPort("http", 8080)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "tiltns", Name: "shop", Selector: "shop",
		Ports: []corev1.ServicePort{cluster.ServicePort("http", 80, intstr.FromInt32(8080))}}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bin := buildKubefwd(t, dir)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	hostsPath := filepath.Join(dir, "hosts")
	const original = "127.0.0.1 localhost\n"
	if err := os.WriteFile(hostsPath, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	tilt := fakeTilt{t: t, dir: filepath.Join(dir, "tilt-state")}
	if err := os.Mkdir(tilt.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"), "FAKE_TILT_DIR="+tilt.dir)
	standIn := filepath.Join(here, "testdata", "tilt")

	// What Tilt's serve_cmd runs; prompt "auto" as root means none.
	startKubefwd := func() *process {
		return startGroup(t, env, filepath.Join(here, "kubefwd", "start-kubefwd.sh"), bin, "tilt-test", "auto",
			"-c", c.Kubeconfig, "--hosts-path", hostsPath, "--state-file", filepath.Join(dir, "state.json"), "--idle")
	}
	kubefwd := startKubefwd()
	// The follower, before Tilt answers: it waits.
	follower := startGroup(t, env, bin, "namespaces", "follow-tilt", "--instance", "tilt-test", "--tilt", standIn)

	list, err := os.ReadFile(capturedList)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := os.ReadFile(capturedWatch)
	if err != nil {
		t.Fatal(err)
	}
	tilt.publish(list, watch)

	// The workload's namespace gets the short names, not the "default"
	// Tilt files the Namespace object under; demo2 comes second.
	clustertest.WaitAnswers(t, hostsPath, "shop", "tiltns", follower, kubefwd)
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", follower, kubefwd)
	if addr := clustertest.HostsAddr(hostsPath, "kubernetes"); addr != "" {
		t.Errorf("default's Services are forwarded (kubernetes at %s): the Namespace object's watch was taken for a namespace", addr)
	}
	if out := runKubefwd(t, env, bin, "namespaces", "list", "--instance", "tilt-test"); strings.Contains(out, " default ") {
		t.Errorf("default is forwarded:\n%s", out)
	}

	// The Refresh button's command.
	runKubefwd(t, env, bin, "refresh", "--instance", "tilt-test")
	clustertest.WaitAnswers(t, hostsPath, "shop", "tiltns", follower, kubefwd)

	// Tilt restarts kubefwd (tilt trigger, its restart button, a Tiltfile
	// edit): the new one starts idle, and Tilt's objects do not change. The
	// follower sets it again as soon as it is up.
	kubefwd.stop(t)
	if data, _ := os.ReadFile(hostsPath); string(data) != original {
		t.Fatalf("hosts file after kubefwd stopped:\n%s", data)
	}
	kubefwd = startKubefwd()
	clustertest.WaitAnswers(t, hostsPath, "shop", "tiltns", follower, kubefwd)
	clustertest.WaitAnswers(t, hostsPath, "web.demo2", "demo2", follower, kubefwd)
	if !strings.Contains(follower.String(), "kubefwd restarted; setting its namespaces again") {
		t.Errorf("the follower did not say it set the restarted kubefwd:\n%s", follower)
	}

	// short_names_from and extra_namespaces: demo2 gets the short names,
	// demo (which Tilt does not deploy to) is forwarded as well.
	follower.stop(t)
	follower = startGroup(t, env, bin, "namespaces", "follow-tilt", "--instance", "tilt-test", "--tilt", standIn,
		"--short-names-from", "demo2", "--extra-namespace", "demo")
	clustertest.WaitAnswers(t, hostsPath, "web", "demo2", follower, kubefwd)
	clustertest.WaitAnswers(t, hostsPath, "web.demo", "demo", follower, kubefwd)
	clustertest.WaitAnswers(t, hostsPath, "shop.tiltns", "tiltns", follower, kubefwd)

	// Tilt down: nothing deployed; the extra namespace stays.
	tilt.publish([]byte(emptyList), firstObject(t, watch))
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		return clustertest.HostsAddr(hostsPath, "shop.tiltns") == "", nil
	})
	if err != nil {
		data, _ := os.ReadFile(hostsPath)
		t.Fatalf("tiltns still forwarded after Tilt stopped deploying:\n%s\nfollower:\n%s", data, follower)
	}
	clustertest.WaitAnswers(t, hostsPath, "web.demo", "demo", follower, kubefwd)

	// Tilt stops the resources: kubefwd is stopped through its socket and
	// cleans up.
	follower.stop(t)
	kubefwd.stop(t)
	if data, _ := os.ReadFile(hostsPath); string(data) != original {
		t.Errorf("hosts file after stop:\n%s", data)
	}
}

// Tilt killed with SIGKILL cannot stop its commands: the follower notices
// its parent is gone and exits.
func TestFollowerExitsWithTilt(t *testing.T) {
	dir := t.TempDir()
	bin := buildKubefwd(t, dir)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in Tilt: a shell that starts the follower and waits.
	parent := exec.Command("sh", "-c", `"$@" >/dev/null 2>&1 & echo $!; wait`, "sh",
		bin, "namespaces", "follow-tilt", "--instance", "none", "--tilt", filepath.Join(here, "testdata", "tilt"))
	parent.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"), "FAKE_TILT_DIR="+dir)
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	var line [32]byte
	n, _ := out.Read(line[:])
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatalf("reading the follower's pid: %v (%q)", err, line[:n])
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond) // the follower is running and has noted its parent
	if !alive(pid) {
		t.Fatal("the follower exited on its own")
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	err = cluster.Poll(t.Context(), 20*time.Second, func(context.Context) (bool, error) { return !alive(pid), nil })
	if err != nil {
		t.Fatalf("the follower (pid %d) outlived its parent", pid)
	}
}

// firstObject is the first object a watch printed: printed again, it
// signals a change.
func firstObject(t *testing.T, watch []byte) []byte {
	var obj json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(watch)).Decode(&obj); err != nil {
		t.Fatal(err)
	}
	return append(obj, '\n')
}

// alive says whether pid runs (a zombie waiting for init does not).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func runKubefwd(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubefwd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildKubefwd builds kubefwd into dir and returns the binary's path.
func buildKubefwd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kubefwd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kubefwd/kubefwd/cmd/kubefwd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
