package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"

	"github.com/kubefwd/kubefwd/internal/control"
	"github.com/kubefwd/kubefwd/test/devcluster/seed"
	"github.com/kubefwd/kubefwd/test/procstat"
)

// screen is `kubefwd ui` in a pseudo-terminal; it notes when output
// arrives, so a key's effect can be timed to the first byte the view draws
// for it.
type screen struct {
	cmd  *exec.Cmd
	pty  *os.File
	mu   sync.Mutex
	out  strings.Builder
	last chan struct{} // closed and replaced whenever output arrives
}

func startScreen(bin string, args ...string) (*screen, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 160, Rows: 50})
	if err != nil {
		return nil, err
	}
	s := &screen{cmd: cmd, pty: f, last: make(chan struct{})}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				s.mu.Lock()
				if s.out.Len() < 1<<20 {
					s.out.Write(buf[:n])
				}
				close(s.last)
				s.last = make(chan struct{})
				s.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return s, nil
}

func (s *screen) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.pty.Close()
}

func (s *screen) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// press writes key and returns how long until the view drew something.
func (s *screen) press(key string) (time.Duration, error) {
	// Let whatever was drawing finish, so the next output is the key's.
	for {
		s.mu.Lock()
		ch := s.last
		s.mu.Unlock()
		select {
		case <-ch:
			continue
		case <-time.After(150 * time.Millisecond):
		}
		break
	}
	s.mu.Lock()
	ch := s.last
	s.mu.Unlock()
	t0 := time.Now()
	if _, err := s.pty.WriteString(key); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(t0), nil
	case <-time.After(5 * time.Second):
		return 0, fmt.Errorf("no frame within 5 s of the key %q", key)
	}
}

// view is scenario 6: the live view (kubefwd ui) attached to a kubefwd
// forwarding NxM Services — what it costs at rest, and how soon a key
// changes the screen.
func (b *bench) view(ctx context.Context, spec seed.Spec) ([]Result, error) {
	if err := seed.Apply(ctx, b.c, spec); err != nil {
		return nil, fmt.Errorf("seed %s: %w", spec, err)
	}
	total := spec.Namespaces * spec.ServicesPerNamespace
	scenario := fmt.Sprintf("6 live view, %d Services", total)
	viewCPU := newResult(scenario, "view CPU % of a core at rest", medianAtMost(5, "%"))
	kfAlone := newResult(scenario, "kubefwd CPU % at rest, no view", reported)
	kfViewed := newResult(scenario, "kubefwd CPU % at rest, view attached", reported)
	stream := newResult(scenario, "status stream KB/s at rest", reported)
	move := newResult(scenario, "ms from j/k to the screen's change, p50", medianAtMost(50, "ms"))
	moveP95 := newResult(scenario, "ms from j/k to the screen's change, p95", reported)
	filter := newResult(scenario, "ms from a filter keystroke to the screen's change, p50", medianAtMost(100, "ms"))

	var nsArgs []string
	for i := range spec.Namespaces {
		nsArgs = append(nsArgs, "-n", fmt.Sprintf("scale%d", i))
	}
	tag := "view-" + strings.ReplaceAll(spec.String(), ":", "-")
	kf, hostsPath, err := b.startKubefwd(tag, nsArgs...)
	if err != nil {
		return nil, err
	}
	defer kf.stop()
	var names []string
	for i := range spec.Namespaces {
		for j := range spec.ServicesPerNamespace {
			names = append(names, fmt.Sprintf("s%d.scale%d", j, i))
		}
	}
	if _, err := waitAllNames(ctx, hostsPath, names, 3*time.Minute); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, kf.log.String())
	}
	const window = 10 * time.Second
	time.Sleep(3 * time.Second) // settled
	busy, err := cpuOver(window, kf.pid())
	if err != nil {
		return nil, err
	}
	kfAlone.Kubefwd = append(kfAlone.Kubefwd, busy[0])

	sc, err := startScreen(b.kubefwd, "ui", "--instance", "bench-"+tag)
	if err != nil {
		return nil, err
	}
	defer sc.stop()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(sc.output(), "s0") || !strings.Contains(sc.output(), "active") {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the view never showed the table:\n%.2000s", sc.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	busy, err = cpuOver(window, sc.cmd.Process.Pid, kf.pid())
	if err != nil {
		return nil, err
	}
	viewCPU.Kubefwd = append(viewCPU.Kubefwd, busy[0])
	kfViewed.Kubefwd = append(kfViewed.Kubefwd, busy[1])

	rate, first, err := streamRate(ctx, "bench-"+tag, 5*time.Second)
	if err != nil {
		return nil, err
	}
	stream.Kubefwd = append(stream.Kubefwd, rate/1024)
	stream.Note = fmt.Sprintf("what a follower reads each second once it has the whole status (%.0f KB for %d Services): the forwards that changed, not all of them", float64(first)/1024, total)

	var moves []float64
	for i := range 40 {
		key := "j"
		if i%2 == 1 {
			key = "k"
		}
		d, err := sc.press(key)
		if err != nil {
			return nil, err
		}
		moves = append(moves, float64(d.Microseconds())/1000)
	}
	move.Kubefwd = append(move.Kubefwd, percentile(moves, 50))
	moveP95.Kubefwd = append(moveP95.Kubefwd, percentile(moves, 95))
	if _, err := sc.press("/"); err != nil {
		return nil, err
	}
	var typed []float64
	for _, key := range []string{"s", "1", "2", "backspace", "backspace", "backspace"} {
		k := key
		if key == "backspace" {
			k = "\x7f"
		}
		d, err := sc.press(k)
		if err != nil {
			return nil, err
		}
		typed = append(typed, float64(d.Microseconds())/1000)
	}
	filter.Kubefwd = append(filter.Kubefwd, percentile(typed, 50))
	viewCPU.Note = fmt.Sprintf("kubefwd ui in a 160×50 pseudo-terminal, attached to a kubefwd forwarding %d Services, over %s with nothing changing; it follows the status stream (one update a second) and draws only the rows on screen", total, window)
	move.Note = "from writing the key to the pseudo-terminal to the first byte of the frame it causes; frames are drawn at most 60 times a second"
	filter.Note = fmt.Sprintf("each keystroke filters all %d rows again", total)
	return []Result{viewCPU, kfAlone, kfViewed, stream, move, moveP95, filter}, nil
}

// cpuOver returns each process's CPU use over d, in % of one core.
func cpuOver(d time.Duration, pids ...int) ([]float64, error) {
	before := make([]float64, len(pids))
	for i, pid := range pids {
		s, err := procstat.CPUSeconds(pid)
		if err != nil {
			return nil, err
		}
		before[i] = s
	}
	time.Sleep(d)
	out := make([]float64, len(pids))
	for i, pid := range pids {
		s, err := procstat.CPUSeconds(pid)
		if err != nil {
			return nil, err
		}
		out[i] = 100 * (s - before[i]) / d.Seconds()
	}
	return out, nil
}

// streamRate follows the instance's status stream for d and returns the
// bytes per second after its first line, and that first line's size.
func streamRate(ctx context.Context, instance string, d time.Duration) (float64, int, error) {
	sock := filepath.Join(control.Dir(os.Getuid()), instance+".sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	ctx, cancel := context.WithTimeout(ctx, d+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://kubefwd/v1/status?watch=1s", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("status stream: %w", err)
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 1<<20)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return 0, 0, fmt.Errorf("status stream: %w", err)
	}
	first := len(line)
	start, n := time.Now(), 0
	for time.Since(start) < d {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return 0, 0, fmt.Errorf("status stream: %w", err)
		}
		n += len(line)
	}
	return float64(n) / time.Since(start).Seconds(), first, nil
}
