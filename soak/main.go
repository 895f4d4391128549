// Command soak runs kubefwd for a long while on the devcluster under
// steady traffic and a seeded schedule of faults (rollouts, pod deaths,
// Service edits, namespace churn, apiserver and kwok restarts, a stopped
// and a killed kubefwd, other programs writing the hosts file), and
// reports what broke: `make soak` writes RELIABILITY.md and a results
// file; `make soak-quick` runs every fault once and fails only when it
// could not run or a connection failed while a ready replica existed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	duration time.Duration
	seed     uint64
	quick    bool
	out      string
	results  string
	minEach  int
	verbose  bool
	render   string
	tolerate int
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "how long faults are caused (the run goes on until every kind came up --min-each times)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule and the clients' choices (0: from the clock; printed, so a run can be replayed)")
	fs.BoolVar(&o.quick, "quick", false, "every fault kind once, short pauses (about 3 minutes); fails on a connection lost while a ready replica existed")
	fs.StringVar(&o.out, "out", "RELIABILITY.md", "the report a full run writes")
	fs.StringVar(&o.results, "results", "soak/results", "directory for the results file")
	fs.IntVar(&o.minEach, "min-each", 5, "a full run goes on past --duration (by at most 15 minutes) until every fault kind came up this many times")
	fs.BoolVar(&o.verbose, "verbose", false, "run kubefwd with -v (its debug log, kept beside the results; the log-lines row then counts INFO alone still)")
	fs.IntVar(&o.tolerate, "tolerate", 0, "--quick fails only when more than this many connections were lost while a ready replica existed (CI's allowance for a known, still open cause; see .ci/run)")
	fs.StringVar(&o.render, "render", "", "write --out again from a results file (the judgement of today's code on that run's measurements), running nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.render != "" {
		if err := rerender(o.render, o.out); err != nil {
			fmt.Fprintf(stderr, "soak: %v\n", err)
			return 1
		}
		return 0
	}
	if fs.NArg() > 0 || o.duration <= 0 || o.minEach < 1 {
		fmt.Fprintln(stderr, "soak: want no arguments, a positive --duration and --min-each ≥ 1")
		return 2
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	if o.quick {
		o.minEach = 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := soakRun(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	report := Markdown(res)
	fmt.Fprint(stdout, report)
	if err := os.MkdirAll(o.results, 0o755); err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	raw, _ := json.MarshalIndent(res, "", "  ")
	name := filepath.Join(o.results, res.Started.UTC().Format("20060102-150405")+"-"+res.Mode+".json")
	if err := os.WriteFile(name, append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "soak: results in %s\n", name)
	if !o.quick {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			fmt.Fprintf(stderr, "soak: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "soak: report in %s\n", o.out)
		return 0
	}
	if bad := res.quickVerdict(o.tolerate); bad != "" {
		fmt.Fprintf(stderr, "soak: %s\n", bad)
		return 1
	}
	return 0
}

func soakRun(ctx context.Context, o options, logw io.Writer) (*Results, error) {
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logw, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
	}
	dir, err := os.MkdirTemp("", "kubefwd-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf("soak: seed %d; building kubefwd", o.seed)
	bin := filepath.Join(dir, "kubefwd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kubefwd").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	logf("soak: starting the devcluster")
	c, err := cluster.Start(ctx, cluster.Options{Log: logw})
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c.Stop(sctx)
	}()
	logf("soak: creating %d namespaces of %d Services (%d replicas each) and a headless StatefulSet", len(namespaces), servicesPerNamespace, replicas)
	for _, ns := range namespaces {
		if err := createNamespace(ctx, c, ns); err != nil {
			return nil, err
		}
	}
	s := &soak{c: c, rng: rand.New(rand.NewPCG(o.seed, 1)), quick: o.quick, log: logf}
	for _, ns := range namespaces {
		if err := s.waitNamespaceReady(ctx, ns); err != nil {
			return nil, err
		}
	}
	s.world = newWorld(c)
	if err := s.world.start(ctx); err != nil {
		return nil, err
	}
	defer s.world.stop()

	hostsPath := filepath.Join(dir, "hosts")
	s.userHosts = []byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n# the user's own line, which must survive\n10.1.2.3 my-own-host\n")
	if err := os.WriteFile(hostsPath, s.userHosts, 0o644); err != nil {
		return nil, err
	}
	s.kf = &kubefwd{bin: bin, kubeconfig: c.Kubeconfig, hostsPath: hostsPath,
		statePath: filepath.Join(dir, "state.json"), logPath: filepath.Join(dir, "kubefwd.log"), verbose: o.verbose}
	defer s.kf.close()
	if err := s.kf.start(); err != nil {
		return nil, err
	}
	want := len(namespaces) * (servicesPerNamespace + 1 + replicas)
	var targets []target
	if err := cluster.Poll(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		st, err := s.kf.status(ctx)
		if err != nil {
			return false, nil
		}
		targets = targetsOf(st)
		return len(targets) == want, nil
	}); err != nil {
		return nil, fmt.Errorf("kubefwd forwards %d of the %d names: %w", len(targets), want, err)
	}
	s.traffic = newTraffic(hostsPath, o.seed)
	s.traffic.setTargets(targets)
	for _, t := range targets {
		if t.ns != volatileNamespace && t.pod == "" && t.key != t.ns+"/db" {
			s.traffic.stable = append(s.traffic.stable, t)
		}
	}
	res := &Results{Mode: map[bool]string{true: "quick", false: "full"}[o.quick], Seed: o.seed, Services: want,
		Cores: runtime.NumCPU(), Go: runtime.Version()}

	clientsCtx, stopClients := context.WithCancel(ctx)
	var clients errgroup.Group
	clients.Go(func() error { s.traffic.readHosts(clientsCtx); return nil })
	if _, ok := s.traffic.probe(ctx, targets, time.Now().Add(2*time.Minute)); !ok {
		stopClients()
		clients.Wait()
		return nil, errors.New("not every name answered through kubefwd at the start")
	}
	res.Started = time.Now()
	logf("soak: %d names answer; traffic and faults begin", len(targets))
	clients.Go(func() error { s.traffic.short(clientsCtx, 0, 50*time.Millisecond); return nil })
	clients.Go(func() error { s.traffic.short(clientsCtx, len(targets)/2, 50*time.Millisecond); return nil })
	for range 2 {
		clients.Go(func() error { s.traffic.downloads(clientsCtx, 32<<20, 2<<20); return nil })
	}
	for range 3 {
		clients.Go(func() error { s.traffic.echo(clientsCtx, 500*time.Millisecond); return nil })
	}
	stability := newAddresses(s.traffic.stable)
	clients.Go(func() error { stability.watch(clientsCtx, s.traffic, 2*time.Second); return nil })
	var samples []Sample
	var sampleMu sync.Mutex
	clients.Go(func() error {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-clientsCtx.Done():
				return nil
			case <-tick.C:
			}
			smp := s.kf.sample(clientsCtx)
			s.mu.Lock()
			smp.AtRest = s.active == 0 && time.Since(s.lastQuiet) > 4*time.Second
			s.mu.Unlock()
			sampleMu.Lock()
			samples = append(samples, smp)
			sampleMu.Unlock()
		}
	})

	// Faults, one after the other, with a pause between.
	sched := newSchedule(s.rng, o.duration/2)
	if o.quick {
		sched.holdKill = 0
	}
	counts := map[string]int{}
	for ctx.Err() == nil {
		elapsed := time.Since(res.Started)
		var kind string
		if o.quick {
			if len(counts) == len(allKinds) {
				break
			}
			kind = sched.next(elapsed)
			if counts[kind] > 0 {
				continue
			}
		} else {
			short := shortKinds(counts, o.minEach)
			if elapsed >= o.duration && (len(short) == 0 || elapsed >= o.duration+15*time.Minute) {
				break
			}
			kind = sched.next(elapsed)
			if elapsed >= o.duration && !slices.Contains(short, kind) {
				continue
			}
		}
		counts[kind]++
		s.cause(ctx, kind)
		if gone := c.Exited(); len(gone) > 0 {
			// Not a fault of the schedule: the cluster broke under the run,
			// and what follows would be blamed on kubefwd.
			stopClients()
			clients.Wait()
			s.kf.stop(20 * time.Second)
			keepLogs(c, s.kf.logPath, filepath.Join(o.results, res.Started.UTC().Format("20060102-150405")+"-void"))
			return nil, fmt.Errorf("the devcluster's %s exited on its own during the run (found after %q at %s): the run is void; the components' logs are kept in %s",
				strings.Join(gone, ", "), kind, time.Now().Format("15:04:05"), o.results)
		}
		pause := s.between(3*time.Second, 8*time.Second)
		if o.quick {
			pause = 2 * time.Second
		}
		s.sleep(ctx, pause)
	}
	if ctx.Err() != nil {
		stopClients()
		clients.Wait()
		s.kf.stop(20 * time.Second)
		return nil, ctx.Err()
	}
	res.Ended = time.Now()
	// A last quiet stretch, then the clients stop and kubefwd is stopped
	// as a user stops it.
	s.sleep(ctx, 10*time.Second)
	stopClients()
	clients.Wait()
	s.checkHosts("while running, at the end")
	s.checkStale(ctx, "at the end, while running")
	took, stopErr := s.kf.stop(30 * time.Second)
	res.StopSeconds = took.Seconds()
	if stopErr != nil {
		res.StopError = stopErr.Error()
	}
	final, err := os.ReadFile(hostsPath)
	if err != nil {
		return nil, err
	}
	lines, blocks := blockLines(final)
	res.StaleAtEnd = len(lines) + blocks
	res.HostsUserBytesIntact = string(final) == string(s.userHosts)

	s.mu.Lock()
	res.Faults = s.faults
	res.StaleAfterKill = s.staleAfterKill
	res.HostsFindings = s.hostsFindings
	s.mu.Unlock()
	res.Failures = judge(s.traffic.failures, res.Faults, s.world.readiness())
	res.Completed = s.traffic.ok
	res.EchoReconnects = s.traffic.reconn
	res.AddressChanges = stability.changes()
	res.StableNames = len(s.traffic.stable)
	res.Samples = samples
	res.Growth = growth(samples, res.Started)
	res.LogLines = s.kf.logLines()
	res.finish()
	// The logs stay beside the results (not in git), for a failure's story.
	keepLogs(c, s.kf.logPath, filepath.Join(o.results, res.Started.UTC().Format("20060102-150405")+"-"+res.Mode))
	return res, nil
}

// keepLogs copies kubefwd's log and every cluster component's beside the
// results, as stamp-NAME.log (not in git), for a failure's story.
func keepLogs(c *cluster.Cluster, kubefwdLog, stamp string) {
	if err := os.MkdirAll(filepath.Dir(stamp), 0o755); err != nil {
		return
	}
	from := map[string]string{"kubefwd": kubefwdLog}
	for _, comp := range cluster.Components() {
		if comp != "etcd" {
			from[comp] = c.LogFile(comp)
		}
	}
	for name, path := range from {
		if data, err := os.ReadFile(path); err == nil {
			os.WriteFile(stamp+"-"+name+".log", data, 0o644)
		}
	}
}

// rerender judges a results file again and writes its report.
func rerender(results, out string) error {
	raw, err := os.ReadFile(results)
	if err != nil {
		return err
	}
	var r Results
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("%s: %w", results, err)
	}
	r.Growth = growth(r.Samples, r.Started)
	r.finish()
	return os.WriteFile(out, []byte(Markdown(&r)), 0o644)
}

// shortKinds lists the fault kinds that came up fewer than n times.
func shortKinds(counts map[string]int, n int) []string {
	var out []string
	for _, k := range allKinds {
		if counts[k] < n {
			out = append(out, k)
		}
	}
	return out
}

// addresses follows the hosts file's address for each stable name and
// records every change.
type addresses struct {
	mu    sync.Mutex
	first map[string]string
	seen  []string
}

func newAddresses(stable []target) *addresses {
	a := &addresses{first: map[string]string{}}
	for _, t := range stable {
		a.first[t.name] = ""
	}
	return a
}

func (a *addresses) watch(ctx context.Context, t *traffic, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		idx := *t.index.Load()
		a.mu.Lock()
		for name, was := range a.first {
			now := idx[name]
			switch {
			case now == "" || now == was:
			case was == "":
				a.first[name] = now
			default:
				a.seen = append(a.seen, fmt.Sprintf("%s: %s → %s at %s", name, was, now, time.Now().UTC().Format("15:04:05")))
				a.first[name] = now
			}
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *addresses) changes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}
