package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

// forwarder is a running kubefwd or kubectl port-forward.
type forwarder struct {
	name string
	cmd  *exec.Cmd
	log  *clustertest.Buffer
	done chan struct{}
}

func (f *forwarder) pid() int { return f.cmd.Process.Pid }

func (f *forwarder) exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGINT, then SIGKILL after 10 s.
func (f *forwarder) stop() {
	if f == nil || f.exited() {
		return
	}
	f.cmd.Process.Signal(os.Interrupt)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
}

func start(name string, bin string, args ...string) (*forwarder, error) {
	f := &forwarder{name: name, cmd: exec.Command(bin, args...), log: &clustertest.Buffer{}, done: make(chan struct{})}
	f.cmd.Stderr = f.log
	f.cmd.Stdout = f.log
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	return f, nil
}

// bench holds what every scenario needs.
type bench struct {
	c       *cluster.Cluster
	kubefwd string // binary
	kubectl string // binary
	dir     string // scratch
	quick   bool
	pairs   int
	profile string // directory for pprof profiles, "" for none
	// settled is the settled RSS (MB) of the run without connections, by
	// scale, for the tunnels' share of the connected run's.
	settled map[string]float64
	// baseline is an earlier kubefwd to compare with (--baseline): its
	// binary and the commit it was built from; "" for none.
	baseline, baselineRev string
}

// startKubefwd runs kubefwd svc on its own hosts file and returns it with
// the hosts file's path. Port 80 is mapped to 8080 so no root is needed.
func (b *bench) startKubefwd(tag string, extra ...string) (*forwarder, string, error) {
	return b.startKubefwdBinary(b.kubefwd, tag, extra...)
}

// startKubefwdBinary is startKubefwd with another kubefwd binary.
func (b *bench) startKubefwdBinary(binary, tag string, extra ...string) (*forwarder, string, error) {
	dir := filepath.Join(b.dir, "kubefwd-"+tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	hostsPath := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		return nil, "", err
	}
	args := append([]string{"svc", "-c", b.c.Kubeconfig, "--hosts-path", hostsPath, "--state-file", filepath.Join(dir, "state.json"),
		"-m", "80:8080", "--instance", "bench-" + tag}, extra...)
	if b.profile != "" {
		args = append(args, "--profile-dir", filepath.Join(b.profile, tag))
	}
	f, err := start("kubefwd", binary, args...)
	return f, hostsPath, err
}

// kubefwdWeb runs kubefwd on the demo namespace and returns it with web's
// address, once web answers through it.
func (b *bench) kubefwdWeb(ctx context.Context, tag string) (*forwarder, string, error) {
	kf, addrs, err := b.kubefwdDemo(ctx, tag, "web")
	if err != nil {
		return nil, "", err
	}
	return kf, addrs[0], nil
}

// kubefwdDemo runs kubefwd on the demo namespace and returns it with the
// addresses (port 8080: web's 80 is mapped there) of names, once each
// answers through it.
func (b *bench) kubefwdDemo(ctx context.Context, tag string, names ...string) (*forwarder, []string, error) {
	return b.kubefwdDemoBinary(ctx, b.kubefwd, tag, names...)
}

// kubefwdDemoBinary is kubefwdDemo with another kubefwd binary.
func (b *bench) kubefwdDemoBinary(ctx context.Context, binary, tag string, names ...string) (*forwarder, []string, error) {
	kf, hostsPath, err := b.startKubefwdBinary(binary, tag, "-n", "demo")
	if err != nil {
		return nil, nil, err
	}
	var addrs []string
	for _, name := range names {
		addr, err := waitName(ctx, hostsPath, name, 8080, 60*time.Second)
		if err != nil {
			kf.stop()
			return nil, nil, err
		}
		addrs = append(addrs, addr)
	}
	return kf, addrs, nil
}

var forwardingFrom = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// startKubectl runs kubectl port-forward svc/NAME and returns the local
// address it listens on.
func (b *bench) startKubectl(ns, svc string, port int) (*forwarder, string, error) {
	f, err := start("kubectl", b.kubectl, "--kubeconfig", b.c.Kubeconfig, "-n", ns, "port-forward", "--address", "127.0.0.1", "svc/"+svc, fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := forwardingFrom.FindStringSubmatch(f.log.String()); m != nil {
			return f, "127.0.0.1:" + m[1], nil
		}
		if f.exited() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.stop()
	return nil, "", fmt.Errorf("kubectl port-forward did not start: %s", f.log.String())
}

// waitName waits for name in the hosts file and returns its address with
// port, once it answers.
func waitName(ctx context.Context, hostsPath, name string, port int, timeout time.Duration) (string, error) {
	return waitAnswer(ctx, hostsPath, name, port, timeout, func(addr string) error { _, err := get(addr, "/"); return err })
}

// waitAnswer waits until name is in the hosts file and answers probe on
// port, and returns its address.
func waitAnswer(ctx context.Context, hostsPath, name string, port int, timeout time.Duration, probe func(addr string) error) (string, error) {
	var addr string
	err := cluster.Poll(ctx, timeout, func(context.Context) (bool, error) {
		ip := clustertest.HostsAddr(hostsPath, name)
		if ip == "" {
			return false, nil
		}
		addr = net.JoinHostPort(ip, strconv.Itoa(port))
		return probe(addr) == nil, nil
	})
	if err != nil {
		data, _ := os.ReadFile(hostsPath)
		return "", fmt.Errorf("%s never answered on %d: %w\nhosts:\n%s", name, port, err, data)
	}
	return addr, nil
}

// get makes one request on a fresh connection and returns the body.
func get(addr, path string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(body), nil
}

// download reads /bytes?n=n through addr and returns how long it took.
func download(addr string, n int64) (time.Duration, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return readBytes(conn, n, start)
}

// readBytes sends the /bytes request on rw and reads the answer to the end.
func readBytes(rw io.ReadWriter, n int64, start time.Time) (time.Duration, error) {
	if _, err := fmt.Fprintf(rw, "GET /bytes?n=%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", n); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(rw, 64<<10), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	got, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("read %d bytes, want %d", got, n)
	}
	return time.Since(start), nil
}

// status is the kubefwd of tag's own status.
func (b *bench) status(ctx context.Context, tag string) (*api.Status, error) {
	out, err := exec.CommandContext(ctx, b.kubefwd, "status", "--json", "--instance", "bench-"+tag).Output()
	if err != nil {
		return nil, fmt.Errorf("kubefwd status: %w", err)
	}
	var st api.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("kubefwd status: %w", err)
	}
	return &st, nil
}

// tunnelsOpen is how many tunnels the kubefwd of tag has open.
func (b *bench) tunnelsOpen(ctx context.Context, tag string) (int, error) {
	st, err := b.status(ctx, tag)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range st.Tunnels {
		n += t.Open + t.Retiring
	}
	return n, nil
}

// retried is how many connections the kubefwd of tag retried on another
// endpoint so far, by its own status.
func (b *bench) retried(ctx context.Context, tag string) (int64, error) {
	st, err := b.status(ctx, tag)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range st.Forwards {
		for _, p := range f.Ports {
			n += p.Retried
		}
	}
	return n, nil
}
