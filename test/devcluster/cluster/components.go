package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Component names, as kwokctl names their pid files and logs.
const (
	APIServer      = "kube-apiserver"
	KwokController = "kwok-controller"
)

// componentProcess remembers how a component was started, so that a fault
// test can stop it and start it again with the same command line.
type componentProcess struct {
	argv []string
	env  []string
	dir  string
	cmd  *exec.Cmd // set once we started it ourselves
	done chan struct{}
}

// Components lists every process of a cluster, as kwokctl names them.
func Components() []string {
	return []string{"etcd", APIServer, "kube-controller-manager", "kube-scheduler", KwokController}
}

// Exited lists the components whose process is not running: crashed, or
// stopped with StopComponent and not started again. A long run (the soak)
// checks it between faults, so that a cluster that broke under it is not
// taken for a failure of what it measures.
func (c *Cluster) Exited() []string {
	var out []string
	for _, comp := range Components() {
		if pid, err := readPid(c.pidFile(comp)); err != nil || !processAlive(pid) {
			out = append(out, comp)
		}
	}
	return out
}

// LogFile is the path of a component's log.
func (c *Cluster) LogFile(component string) string {
	return filepath.Join(c.ClusterDir(), "logs", component+".log")
}

func (c *Cluster) pidFile(component string) string {
	return filepath.Join(c.ClusterDir(), "pids", component+".pid")
}

// StopAPIServer kills kube-apiserver (as a crash or a network cut would look to
// clients: connections drop, new ones are refused) and waits until it is gone.
// Everything else (etcd, kwok, backends) keeps running.
func (c *Cluster) StopAPIServer(ctx context.Context) error { return c.StopComponent(ctx, APIServer) }

// StartAPIServer starts kube-apiserver again after StopAPIServer and waits
// until it serves requests.
func (c *Cluster) StartAPIServer(ctx context.Context) error { return c.StartComponent(ctx, APIServer) }

// StopComponent kills one of the cluster's processes (APIServer,
// KwokController) with SIGKILL, as a crash looks to its clients, and waits
// until it is gone. The others keep running.
func (c *Cluster) StopComponent(ctx context.Context, component string) error {
	pid, err := readPid(c.pidFile(component))
	if err != nil {
		return fmt.Errorf("find %s of %s: %w", component, c.Name, err)
	}
	if !processAlive(pid) {
		return fmt.Errorf("%s of %s is not running", component, c.Name)
	}
	p := c.procs[component]
	if p == nil {
		if p, err = inspectProcess(pid); err != nil {
			return fmt.Errorf("inspect %s (pid %d): %w", component, pid, err)
		}
		c.procs[component] = p
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", component, pid, err)
	}
	if p.cmd != nil {
		<-p.done
	}
	return Poll(ctx, 30*time.Second, func(context.Context) (bool, error) {
		return !processAlive(pid), nil
	})
}

// StartComponent starts a component again after StopComponent, with the
// command line it had, and waits until it runs (kube-apiserver: until it
// serves requests).
func (c *Cluster) StartComponent(ctx context.Context, component string) error {
	p := c.procs[component]
	if p == nil {
		return fmt.Errorf("StartComponent: %s was not stopped by StopComponent", component)
	}
	if pid, err := readPid(c.pidFile(component)); err == nil && processAlive(pid) {
		return fmt.Errorf("%s of %s is already running (pid %d)", component, c.Name, pid)
	}
	if component == KwokController {
		// kwok manages a node's pods only while it holds the node's Lease,
		// under an identity new to each process; the old process's Lease
		// runs 200 s (kwokctl's setting), so a restarted kwok would leave
		// every pod alone that long. A kubelet restarting keeps its node:
		// let the new kwok take the Leases at once.
		leases := c.Clientset.CoordinationV1().Leases(corev1.NamespaceNodeLease)
		if err := leases.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("release the nodes' leases for the new %s: %w", component, err)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(c.ClusterDir(), "logs", component+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own session, like kwokctl's components: a Ctrl-C in the terminal
	// goes to the harness, which then tears the cluster down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", component, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	// kwokctl stops components through their pid files.
	if err := os.WriteFile(c.pidFile(component), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("%s exited at start; see %s", component, logFile.Name())
		default:
		}
		if component != APIServer {
			return true, nil
		}
		body, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

func (p *componentProcess) reap() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// inspectProcess reads a running process's command line, environment and
// working directory from /proc.
func inspectProcess(pid int) (*componentProcess, error) {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil {
		return nil, err
	}
	environ, err := os.ReadFile(filepath.Join(proc, "environ"))
	if err != nil {
		return nil, err
	}
	dir, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil {
		return nil, err
	}
	split := func(b []byte) []string {
		s := strings.TrimSuffix(string(b), "\x00")
		if s == "" {
			return nil
		}
		return strings.Split(s, "\x00")
	}
	argv := split(cmdline)
	if len(argv) == 0 {
		return nil, errors.New("empty command line")
	}
	return &componentProcess{argv: argv, env: split(environ), dir: dir}, nil
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// processAlive reports whether pid names a running (not zombie) process.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie still answers kill(0); /proc tells it apart.
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // no /proc (macOS): trust kill
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
