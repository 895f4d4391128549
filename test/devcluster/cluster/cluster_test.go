package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefwd/kubefwd/test/devcluster/binaries"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
	"github.com/kubefwd/kubefwd/test/devcluster/seed"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

var identity = regexp.MustCompile(`^pod=demo/(web-[a-z0-9]+-[a-z0-9]+) port=8080\n$`)

// kubectl's own port-forward, the reference client, reaches a backend
// through kube-apiserver and kwok.
func TestKubectlPortForwardServiceReachesBackend(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	cmd := exec.CommandContext(ctx, c.Binaries.Path(binaries.Kubectl),
		"--kubeconfig", c.Kubeconfig, "--context", c.Context,
		"-n", "demo", "port-forward", "svc/web", "0:80", "--address", "127.0.0.1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// "Forwarding from 127.0.0.1:NNNNN -> 8080"
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("kubectl port-forward printed nothing: %v; stderr: %s", err, stderr.String())
	}
	m := regexp.MustCompile(`127\.0\.0\.1:(\d+) -> 8080`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected kubectl output %q", line)
	}
	addr := "127.0.0.1:" + m[1]

	// Several requests on one keep-alive connection, then the other routes.
	client := &http.Client{Timeout: 20 * time.Second}
	for range 3 {
		body := get(t, client, "http://"+addr+"/")
		if !identity.MatchString(body) {
			t.Fatalf("GET / = %q, want pod=demo/web-… port=8080", body)
		}
	}
	if body := get(t, client, "http://"+addr+"/bytes?n=100000"); len(body) != 100000 {
		t.Fatalf("GET /bytes?n=100000 returned %d bytes", len(body))
	}
	resp, err := client.Post("http://"+addr+"/echo", "text/plain", strings.NewReader("ping"))
	if err != nil {
		t.Fatal(err)
	}
	echo, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(echo) != "ping" {
		t.Fatalf("POST /echo = %q, want %q", echo, "ping")
	}
}

func get(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(body)
}

// Every seeded Service has the endpoints the demo promises, each backed.
func TestDemoSeed(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	ctx := t.Context()
	for _, tc := range []struct {
		ns, svc string
		want    int
	}{
		{"demo", "web", 2}, {"demo", "api", 1}, {"demo", "db", 2}, {"demo", "cache", 1},
		{"demo", "dns", 1}, {"demo", "legacy", 1}, {"demo2", "web", 1},
	} {
		pods, err := c.WaitServiceReady(ctx, tc.ns, tc.svc, tc.want, 30*time.Second)
		if err != nil {
			t.Errorf("%s/%s: %v", tc.ns, tc.svc, err)
			continue
		}
		for _, p := range pods {
			if err := c.WaitServing(ctx, tc.ns, p); err != nil {
				t.Errorf("%s/%s pod %s: %v", tc.ns, tc.svc, p, err)
			}
		}
	}
	db0, err := c.PortForwardGet(ctx, "demo", "db-0", 5432, "/")
	if err != nil || db0 != "pod=demo/db-0 port=5432\n" {
		t.Errorf("db-0:5432 answered %q, %v", db0, err)
	}
	svc, err := c.Clientset.CoreV1().Services("demo").Get(ctx, "external", metav1.GetOptions{})
	if err != nil || svc.Spec.Type != corev1.ServiceTypeExternalName {
		t.Errorf("external: %v, %v", svc, err)
	}
}

// Deleting a pod brings a replacement that is backed and answers with its
// own name; a StatefulSet pod comes back under the same name, backed anew.
func TestDeletedPodIsReplacedAndBacked(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	ctx := t.Context()

	before, err := c.WaitServiceReady(ctx, "demo", "web", 2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	victim := before[0]
	if err := c.DeletePod(ctx, "demo", victim); err != nil {
		t.Fatal(err)
	}
	var after []string
	err = cluster.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		after, err = c.WaitServiceReady(ctx, "demo", "web", 2, 30*time.Second)
		return err == nil && !slices.Contains(after, victim), nil
	})
	if err != nil {
		t.Fatalf("web did not get a replacement for %s: %v (have %v)", victim, err, after)
	}
	for _, p := range after {
		if slices.Contains(before, p) {
			continue
		}
		if err := c.WaitServing(ctx, "demo", p); err != nil {
			t.Fatal(err)
		}
		body, err := c.PortForwardGet(ctx, "demo", p, 8080, "/")
		if err != nil || body != fmt.Sprintf("pod=demo/%s port=8080\n", p) {
			t.Fatalf("replacement %s answered %q, %v", p, body, err)
		}
	}
	// The harness's informer may trail the API by a moment.
	err = cluster.Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		_, ok := c.Backing("demo", victim)
		return !ok, nil
	})
	if err != nil {
		t.Errorf("deleted pod %s is still backed: %v", victim, err)
	}

	old, err := c.Clientset.CoreV1().Pods("demo").Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePod(ctx, "demo", "db-0"); err != nil {
		t.Fatal(err)
	}
	var fresh *corev1.Pod
	err = cluster.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		fresh, err = c.Clientset.CoreV1().Pods("demo").Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && fresh.UID != old.UID, nil
	})
	if err != nil {
		t.Fatalf("db-0 did not come back: %v", err)
	}
	if _, err := c.WaitBacked(ctx, "demo", "db-0", string(fresh.UID)); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		body, err := c.PortForwardGet(ctx, "demo", "db-0", 5432, "/")
		return err == nil && body == "pod=demo/db-0 port=5432\n", nil
	})
	if err != nil {
		t.Fatalf("new db-0 does not answer: %v", err)
	}
	pf, err := c.Dynamic.Resource(cluster.PortForwardGVR).Namespace("demo").Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if refs := pf.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != fresh.UID {
		t.Errorf("PortForward db-0 owned by %v, want the new pod %s", refs, fresh.UID)
	}
}

// A PortForward that a test made before its pod existed is left alone, so a
// pod can stand for any local server.
func TestExternalPortForwardIsLeftAlone(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	ns := "external-backend"
	if err := c.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "custom server\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{"name": "custom", "namespace": ns},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(5432)},
			"target": map[string]any{"address": "127.0.0.1", "port": int64(port)},
		}}},
	}}
	if _, err := c.Dynamic.Resource(cluster.PortForwardGVR).Namespace(ns).Create(ctx, pf, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "custom", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres",
			Ports: []corev1.ContainerPort{cluster.ContainerPort("postgres", 5432)}}}},
	}
	if _, err := c.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := c.WaitBacked(ctx, ns, "custom", "")
	if err != nil {
		t.Fatal(err)
	}
	if !b.External {
		t.Fatalf("pod with a pre-made PortForward was backed by the harness: %+v", b)
	}
	err = cluster.Poll(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		body, err := c.PortForwardGet(ctx, ns, "custom", 5432, "/")
		return err == nil && body == "custom server\n", nil
	})
	if err != nil {
		t.Fatalf("port-forward did not reach the test's own server: %v", err)
	}
	got, err := c.Dynamic.Resource(cluster.PortForwardGVR).Namespace(ns).Get(ctx, "custom", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ours := got.GetLabels()[cluster.ManagedByLabel]; ours {
		t.Errorf("the harness took over the test's PortForward: %v", got.GetLabels())
	}
}

// The apiserver can be stopped and started for fault tests; clients see it
// go away and come back, and the backends keep working throughout.
func TestAPIServerStopStart(t *testing.T) {
	c := clustertest.New(t)
	ctx := t.Context()
	if err := c.CreateNamespace(ctx, "faults"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDeployment(ctx, "faults", "app", 1, cluster.ContainerPort("http", 8080)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateService(ctx, cluster.ServiceSpec{Namespace: "faults", Name: "app", Selector: "app",
		Ports: []corev1.ServicePort{cluster.ServicePort("http", 8080, intstr.FromInt32(8080))}}); err != nil {
		t.Fatal(err)
	}
	pods, err := c.WaitServiceReady(ctx, "faults", "app", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.WaitBacked(ctx, "faults", pods[0], "")
	if err != nil {
		t.Fatal(err)
	}

	if gone := c.Exited(); len(gone) > 0 {
		t.Fatalf("components not running on a fresh cluster: %v", gone)
	}
	if err := c.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if gone := c.Exited(); !slices.Equal(gone, []string{cluster.APIServer}) {
		t.Errorf("with the apiserver stopped, Exited() = %v", gone)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.Clientset.CoreV1().Namespaces().Get(short, "faults", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("the API answered while kube-apiserver was stopped")
	}
	// The pod's own server does not depend on the apiserver.
	if body := get(t, &http.Client{Timeout: 5 * time.Second}, "http://127.0.0.1:"+strconv.Itoa(int(b.Ports[8080]))+"/"); body != "pod=faults/"+pods[0]+" port=8080\n" {
		t.Errorf("backend answered %q while the apiserver was down", body)
	}

	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Clientset.CoreV1().Namespaces().Get(ctx, "faults", metav1.GetOptions{}); err != nil {
		t.Fatalf("API after restart: %v", err)
	}
	if gone := c.Exited(); len(gone) > 0 {
		t.Errorf("after the apiserver's restart, Exited() = %v", gone)
	}
	if err := c.WaitServing(ctx, "faults", pods[0]); err != nil {
		t.Fatalf("pod not reachable through the restarted apiserver: %v", err)
	}
	// The harness's informer reconnected: a pod made now is backed too.
	if err := c.Scale(ctx, "deployment", "faults", "app", 2); err != nil {
		t.Fatal(err)
	}
	pods, err = c.WaitServiceReady(ctx, "faults", "app", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if err := c.WaitServing(ctx, "faults", p); err != nil {
			t.Fatal(err)
		}
	}
	// Stopping twice in a row works as well (the restarted process is ours).
	if err := c.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
}

// A small scale seed exercises the parallel seeding path.
func TestScaleSeed(t *testing.T) {
	c := clustertest.Shared(t)
	ctx := t.Context()
	spec, err := seed.Parse("scale:2x10")
	if err != nil {
		t.Fatal(err)
	}
	if err := seed.Apply(ctx, c, spec); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"scale0", "scale1"} {
		list, err := c.Clientset.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 10 {
			t.Errorf("%s has %d Services, want 10", ns, len(list.Items))
		}
	}
	if _, err := c.Clientset.CoreV1().Namespaces().Get(ctx, "scale2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("scale2 should not exist: %v", err)
	}
}

// A start that fails (here kwokctl itself) returns the error and leaves no
// cluster directory behind, rather than panicking in its cleanup.
func TestStartFailureCleansUp(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the devcluster runs on Linux only")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, binaries.Kwokctl), []byte("#!/bin/sh\necho kwokctl says no\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("kubefwd-startfail-%d", os.Getpid())
	c, err := cluster.Start(t.Context(), cluster.Options{Name: name, Binaries: binaries.Set{Dir: dir}})
	if err == nil || !strings.Contains(err.Error(), "kwokctl says no") {
		t.Fatalf("Start = %v, %v; want the failure of kwokctl create", c, err)
	}
	if _, err := os.Stat(filepath.Join(cluster.Root(), name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed cluster's directory is still there: %v", err)
	}
}
