package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/test/instmetrics"
	"github.com/kubefwd/kubefwd/test/procstat"
)

// instance is the name the soak's kubefwd runs under.
const instance = "soak"

// kubefwd runs and restarts the kubefwd under test. Its log goes to a file
// and is counted by level.
type kubefwd struct {
	bin, kubeconfig, hostsPath, statePath, logPath string
	verbose                                        bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
	lines   map[string]int // log lines by level, over every process
	logf    *os.File
}

func (k *kubefwd) args() []string {
	args := []string{"svc", "-c", k.kubeconfig, "-n", strings.Join(namespaces, ","),
		"--hosts-path", k.hostsPath, "--state-file", k.statePath, "--instance", instance}
	if k.verbose {
		args = append(args, "-v")
	}
	return args
}

// start runs a new kubefwd process.
func (k *kubefwd) start() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.logf == nil {
		f, err := os.OpenFile(k.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		k.logf, k.lines = f, map[string]int{}
	}
	cmd := exec.Command(k.bin, k.args()...)
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = k.logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	k.cmd, k.done, k.started = cmd, done, time.Now()
	go func() {
		k.count(out)
		cmd.Wait()
		close(done)
	}()
	return nil
}

// count copies the log to the file and counts its lines by level.
func (k *kubefwd) count(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		level := "other"
		for _, l := range []string{"DEBUG", "INFO", "WARN", "ERROR"} {
			if strings.Contains(line, "level="+l) {
				level = l
				break
			}
		}
		k.mu.Lock()
		k.lines[level]++
		fmt.Fprintln(k.logf, line)
		k.mu.Unlock()
	}
}

func (k *kubefwd) proc() (*exec.Cmd, chan struct{}, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cmd, k.done, k.started
}

func (k *kubefwd) signal(sig syscall.Signal) error {
	cmd, _, _ := k.proc()
	return cmd.Process.Signal(sig)
}

// kill ends the process with SIGKILL and waits for it.
func (k *kubefwd) kill() {
	cmd, done, _ := k.proc()
	cmd.Process.Kill()
	<-done
}

// stop ends the process as a user does (SIGINT) and reports whether it
// exited within the bound.
func (k *kubefwd) stop(within time.Duration) (time.Duration, error) {
	cmd, done, _ := k.proc()
	t0 := time.Now()
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		return time.Since(t0), fmt.Errorf("kubefwd did not stop within %s of SIGINT; killed", within)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return time.Since(t0), fmt.Errorf("kubefwd exited with status %d after SIGINT", code)
	}
	return time.Since(t0), nil
}

func (k *kubefwd) logLines() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]int{}
	for l, n := range k.lines {
		out[l] = n
	}
	return out
}

func (k *kubefwd) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.logf != nil {
		k.logf.Close()
	}
}

// status is kubefwd status -o json, as a user reads it.
func (k *kubefwd) status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, k.bin, "status", "-o", "json", "--instance", instance).Output()
	if err != nil {
		return api.Status{}, fmt.Errorf("kubefwd status: %w", err)
	}
	var st api.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return api.Status{}, fmt.Errorf("kubefwd status: %w", err)
	}
	return st, nil
}

func (k *kubefwd) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, k.bin, "refresh", "--instance", instance).CombinedOutput(); err != nil {
		return fmt.Errorf("kubefwd refresh: %v: %s", err, out)
	}
	return nil
}

// sample reads the process's resident memory, open files, and from its
// metrics its goroutines, Go heap and open tunnels.
func (k *kubefwd) sample(ctx context.Context) Sample {
	cmd, _, started := k.proc()
	pid := cmd.Process.Pid
	s := Sample{At: time.Now(), Pid: pid, Uptime: time.Since(started).Seconds(), Goroutines: -1, HeapKiB: -1, Tunnels: -1}
	s.RSSKiB, _ = procstat.MemKiB(pid, "VmRSS")
	s.FDs, _ = procstat.OpenFDs(pid)
	if m, err := instmetrics.Gauges(ctx, instmetrics.Socket(instance)); err == nil {
		if v, ok := m["go_goroutines"]; ok {
			s.Goroutines = int(v)
		}
		if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
			s.HeapKiB = int(v / 1024)
		}
		if v, ok := m["kubefwd_tunnels_open"]; ok {
			s.Tunnels = int(v)
		}
	}
	return s
}

// hostsIndex maps each name in a hosts file to its address (the first
// line naming it wins, as resolvers read it).
func hostsIndex(content []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(content), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, n := range f[1:] {
			if _, ok := out[n]; !ok {
				out[n] = f[0]
			}
		}
	}
	return out
}

// blockLines are the entry lines inside kubefwd blocks, and how many
// blocks there are.
func blockLines(content []byte) (lines [][2]string, blocks int) {
	in := false
	for _, line := range strings.Split(string(content), "\n") {
		switch {
		case strings.HasPrefix(line, "# kubefwd begin "):
			in = true
			blocks++
		case strings.HasPrefix(line, "# kubefwd end "):
			in = false
		case in:
			f := strings.Fields(line)
			for _, n := range f[min(1, len(f)):] {
				lines = append(lines, [2]string{f[0], n})
			}
		}
	}
	return lines, blocks
}

// staleNames counts the names in kubefwd's blocks that its status does
// not hold at that address (a name of a Service gone, an address
// changed), plus those of any block beyond the first.
func staleNames(content []byte, st api.Status) int {
	want := map[string]string{}
	for _, f := range st.Forwards {
		for _, n := range f.Names {
			want[n] = f.Address
		}
	}
	lines, blocks := blockLines(content)
	stale := 0
	seen := map[string]bool{}
	for _, l := range lines {
		if addr, ok := want[l[1]]; !ok || addr != l[0] || seen[l[1]] {
			stale++
		}
		seen[l[1]] = true
	}
	if blocks > 1 {
		stale += blocks - 1
	}
	return stale
}
