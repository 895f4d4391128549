// Package cluster starts and drives a real local Kubernetes control plane for
// kubefwd's tests, benchmarks and demo: kube-apiserver, etcd,
// kube-controller-manager and kube-scheduler built from their Go modules, and
// kwok acting as the kubelet of every node. Every pod is backed by a real local
// server (package backend) reached through kwok's PortForward resource, so a
// port-forward travels the real path: client → kube-apiserver → kubelet
// protocol → backend.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubefwd/kubefwd/test/devcluster/binaries"
	"github.com/kubefwd/kubefwd/test/devcluster/flock"
)

// ServiceCIDR is big enough for thousands of Services; the apiserver's
// default (/24) fills up at about 250.
const ServiceCIDR = "10.96.0.0/16"

// ownerFile records the PID of the process that owns a cluster directory, so
// a later Start can remove clusters whose owner died without tearing down.
const ownerFile = "owner.pid"

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Name of the cluster; empty picks a unique one.
	Name string
	// Nodes is the number of kwok nodes (default 2).
	Nodes int
	// Log receives progress and diagnostics; nil discards them.
	Log io.Writer
	// Binaries to run; the zero value builds or reuses the cached set.
	Binaries binaries.Set
	// ExtraArgs are passed to components as kwokctl's --extra-args
	// "component=flag=value", e.g. "kube-apiserver=feature-gates=PortForwardWebsockets=false".
	ExtraArgs []string
}

// Cluster is a running devcluster. Stop it when done.
type Cluster struct {
	Name string
	// Kubeconfig is the path of an admin kubeconfig for this cluster.
	Kubeconfig string
	// Context is the kubeconfig context naming this cluster.
	Context    string
	RESTConfig *rest.Config
	Clientset  kubernetes.Interface
	Dynamic    dynamic.Interface
	Binaries   binaries.Set

	root      string // our directory: KWOK_WORKDIR plus bookkeeping
	extraArgs []string
	log       io.Writer
	backends  *backends
	restHost  string // the API server's URL
	stopBack  context.CancelFunc
	procs     map[string]*componentProcess // components stopped and started by the harness

	verifiedMu   sync.Mutex
	verifiedUIDs map[types.UID]bool // pods proven to answer; guarded by verifiedMu
}

// Root is the directory under which every devcluster keeps its files.
func Root() string { return filepath.Join(os.TempDir(), "kubefwd-devcluster") }

// Start creates a cluster and returns once its API answers, its nodes are
// ready and the backend manager is running. On error nothing is left behind.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	bins := opts.Binaries
	if bins.Dir == "" {
		if bins, err = binaries.Ensure(ctx, binaries.Options{Log: logw}); err != nil {
			return nil, err
		}
	}
	name := opts.Name
	if name == "" {
		name = "kubefwd-" + randomSuffix()
	}
	if !validName(name) {
		return nil, fmt.Errorf("cluster name %q must be lower-case letters, digits and '-', at most 40 characters", name)
	}
	nodes := opts.Nodes
	if nodes <= 0 {
		nodes = 2
	}
	ReapStale(ctx, bins, logw)

	root := filepath.Join(Root(), name)
	if _, err := os.Stat(root); err == nil {
		return nil, fmt.Errorf("a devcluster named %q already exists (%s)", name, root)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	c = &Cluster{
		extraArgs:  opts.ExtraArgs,
		Name:       name,
		Kubeconfig: filepath.Join(root, "kubeconfig"),
		Context:    "kwok-" + name,
		Binaries:   bins,
		root:       root,
		log:        logw,
		procs:      map[string]*componentProcess{},
	}
	// The cluster is passed in: by the time this runs, `return nil, err` has
	// set the result c to nil.
	defer func(c *Cluster) {
		if err != nil {
			// Teardown must not depend on the caller's (maybe cancelled) context.
			if stopErr := c.Stop(context.WithoutCancel(ctx)); stopErr != nil {
				fmt.Fprintf(logw, "devcluster: cleanup after failed start: %v\n", stopErr)
			}
		}
	}(c)
	if err := c.create(ctx); err != nil {
		return nil, err
	}
	if err := c.connect(); err != nil {
		return nil, err
	}
	if err := c.createNodes(ctx, nodes); err != nil {
		return nil, err
	}
	backCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stopBack = cancel
	logDir := filepath.Join(c.ClusterDir(), "pod-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	c.backends = newBackends(c.Clientset, c.Dynamic, logw, logDir)
	if u, err := url.Parse(c.restHost); err == nil {
		c.backends.apiPort = u.Port()
	}
	if err := c.backends.start(backCtx); err != nil {
		return nil, err
	}
	return c, nil
}

// create runs `kwokctl create cluster`. Creation is serialised across
// processes: kwokctl picks some ports by probing, which races between
// concurrent creators.
func (c *Cluster) create(ctx context.Context) error {
	unlock, err := flock.Acquire(ctx, filepath.Join(Root(), "create.lock"), func() {
		fmt.Fprintf(c.log, "devcluster: waiting for another cluster to finish starting\n")
	})
	if err != nil {
		return err
	}
	defer unlock()
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	b := c.Binaries
	args := []string{
		"create", "cluster",
		"--name", c.Name,
		"--runtime", "binary",
		"--kubeconfig", c.Kubeconfig,
		"--kube-apiserver-binary", b.Path(binaries.KubeAPIServer),
		"--kube-controller-manager-binary", b.Path(binaries.KubeControllerManager),
		"--kube-scheduler-binary", b.Path(binaries.KubeScheduler),
		"--kwok-controller-binary", b.Path(binaries.Kwok),
		"--etcd-binary", b.Path(binaries.Etcd),
		"--kube-apiserver-port", strconv.Itoa(ports[0]),
		"--etcd-port", strconv.Itoa(ports[1]),
		"--kube-controller-manager-port", strconv.Itoa(ports[2]),
		"--kube-scheduler-port", strconv.Itoa(ports[3]),
		"--controller-port", strconv.Itoa(ports[4]),
		"--enable-crds", "PortForward,ClusterPortForward,Logs",
		"--kube-authorization",
		"--disable-qps-limits",
		"--extra-args", "kube-apiserver=service-cluster-ip-range=" + ServiceCIDR,
		"--extra-args", "kube-controller-manager=service-cluster-ip-range=" + ServiceCIDR,
		// One of each, so no leader election: with it, an apiserver outage
		// longer than the lease's renew deadline (10 s) makes the
		// controller-manager and scheduler exit, and nothing replaces or
		// schedules pods again (kwokctl's binary runtime does not restart
		// them).
		"--extra-args", "kube-controller-manager=leader-elect=false",
		"--extra-args", "kube-scheduler=leader-elect=false",
		"--quiet-pull",
		"--wait", "2m",
	}
	for _, a := range c.extraArgs {
		args = append(args, "--extra-args", a)
	}
	start := time.Now()
	fmt.Fprintf(c.log, "devcluster: starting cluster %s (apiserver on 127.0.0.1:%d)\n", c.Name, ports[0])
	if out, err := c.kwokctl(ctx, args...); err != nil {
		return fmt.Errorf("kwokctl create cluster %s: %w\n%s", c.Name, err, out)
	}
	fmt.Fprintf(c.log, "devcluster: cluster %s is up (%s)\n", c.Name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (c *Cluster) connect() error {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: c.Context},
	).ClientConfig()
	if err != nil {
		return fmt.Errorf("read kubeconfig of cluster %s: %w", c.Name, err)
	}
	// The harness seeds hundreds of objects; client-go's default 5 QPS would
	// make that take minutes.
	cfg.QPS, cfg.Burst = 500, 1000
	c.restHost = cfg.Host
	if c.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	c.RESTConfig = cfg
	return nil
}

// createNodes registers kwok nodes, each with a pod CIDR of its own so that
// kwok can hand out thousands of pod IPs.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("kwok-node-%d", i),
				// As a kubelet labels its node (kubernetes.io/os is what
				// pods select Linux nodes by).
				Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i),
					corev1.LabelOSStable: "linux", corev1.LabelArchStable: runtime.GOARCH},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			},
			Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.%d.0.0/16", 64+i)},
		}
		if _, err := c.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
	}
	return Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		list, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil // the apiserver may still be settling
		}
		ready := 0
		for _, node := range list.Items {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, nil
	})
}

// Stop tears the cluster down: backends, PortForwards, every process and
// every file the cluster created. It is safe to call more than once.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.stopBack != nil {
		c.stopBack()
		c.backends.wait()
		c.stopBack = nil
	}
	var errs []error
	for _, p := range c.procs {
		// A component we restarted ourselves: kwokctl kills it through
		// the pid file too, but reap our child so it does not linger.
		defer p.reap()
	}
	if _, err := os.Stat(c.root); err == nil {
		pids := componentPids(c.ClusterDir())
		if out, err := c.kwokctl(ctx, "delete", "cluster", "--name", c.Name, "--kubeconfig", c.Kubeconfig); err != nil {
			errs = append(errs, fmt.Errorf("kwokctl delete cluster %s: %w\n%s", c.Name, err, out))
		}
		// kwokctl signals the components and returns; wait until they are
		// gone so that no process and no listening port outlives Stop.
		if err := waitExited(ctx, pids, 30*time.Second); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(c.root); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kwokctl runs kwokctl with this cluster's private work directory, so that
// nothing is written to ~/.kwok or ~/.kube.
func (c *Cluster) kwokctl(ctx context.Context, args ...string) ([]byte, error) {
	return runKwokctl(ctx, c.Binaries, c.root, args...)
}

func runKwokctl(ctx context.Context, bins binaries.Set, root string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bins.Path(binaries.Kwokctl), args...)
	cmd.Env = append(os.Environ(),
		"KWOK_WORKDIR="+filepath.Join(root, "kwok"),
		"KUBECONFIG="+filepath.Join(root, "kubeconfig"),
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// ClusterDir is kwok's directory for this cluster (pki, logs, pids).
func (c *Cluster) ClusterDir() string {
	return filepath.Join(c.root, "kwok", "clusters", c.Name)
}

// ReapStale removes clusters left behind by processes that died without
// tearing down (a test binary killed by its timeout, say).
func ReapStale(ctx context.Context, bins binaries.Set, logw io.Writer) {
	entries, err := os.ReadDir(Root())
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		root := filepath.Join(Root(), e.Name())
		data, err := os.ReadFile(filepath.Join(root, ownerFile))
		if err != nil {
			continue // being created right now, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || processAlive(pid) {
			continue
		}
		fmt.Fprintf(logw, "devcluster: removing cluster %s left behind by exited process %d\n", e.Name(), pid)
		pids := componentPids(filepath.Join(root, "kwok", "clusters", e.Name()))
		if out, err := runKwokctl(ctx, bins, root, "delete", "cluster", "--name", e.Name()); err != nil {
			fmt.Fprintf(logw, "devcluster: kwokctl delete cluster %s: %v\n%s", e.Name(), err, out)
		}
		if err := waitExited(ctx, pids, 30*time.Second); err != nil {
			fmt.Fprintf(logw, "devcluster: %v\n", err)
		}
		os.RemoveAll(root)
	}
}

// componentPids reads the pid files kwokctl keeps for its components.
func componentPids(clusterDir string) []int {
	files, _ := filepath.Glob(filepath.Join(clusterDir, "pids", "*.pid"))
	var pids []int
	for _, f := range files {
		if pid, err := readPid(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitExited waits for processes to exit, killing any still there at the end.
func waitExited(ctx context.Context, pids []int, timeout time.Duration) error {
	alive := func() []int {
		var out []int
		for _, pid := range pids {
			if processAlive(pid) {
				out = append(out, pid)
			}
		}
		return out
	}
	if Poll(ctx, timeout, func(context.Context) (bool, error) { return len(alive()) == 0, nil }) == nil {
		return nil
	}
	left := alive()
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return fmt.Errorf("components %v did not exit within %s; killed", left, timeout)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validName(s string) bool {
	if s == "" || len(s) > 40 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Poll calls cond every 100ms until it returns true, an error, or timeout.
func Poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
