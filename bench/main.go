// Command bench measures kubefwd side by side with kubectl port-forward on
// the devcluster and writes BENCHMARKS.md and bench/results/*.json.
//
//	go run ./bench            every scenario, full size (make bench)
//	go run ./bench --quick    everything small, within two minutes (make bench-quick; CI)
//
// Numbers are never asserted by tests (shared machines are noisy); this
// program reports them against the goals in BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/seed"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "run everything small, within two minutes; writes results but not BENCHMARKS.md")
	pairs := fs.Int("pairs", 0, "alternating kubefwd/kubectl pairs per scenario (default 5; 2 with --quick)")
	out := fs.String("out", "BENCHMARKS.md", "where the report goes (full mode)")
	results := fs.String("results", filepath.Join("bench", "results"), "directory for the raw numbers (JSON)")
	only := fs.String("only", "", "comma-separated scenarios to run: throughput,latency,failover,startup,outage,udp,view (default all)")
	profile := fs.String("profile-dir", "", "write kubefwd's CPU and allocation profiles for each scenario under this directory")
	render := fs.String("render", "", "only write the report again from a results JSON file (after changing the report's text)")
	baseline := fs.String("baseline", "", "also compare with kubefwd built from this commit of the repository (e.g. a tag, or main~10): warm new-connection latency and one connection's throughput, alternately in the same run")
	scales := fs.String("scales", "", "startup scales, small and large, as NxM,NxM (default 5x100,10x300; 2x10,3x20 with --quick)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *pairs == 0 {
		*pairs = 5
		if *quick {
			*pairs = 2
		}
	}
	if *pairs < 1 {
		fmt.Fprintln(stderr, "bench: --pairs must be at least 1")
		return 2
	}
	if *render != "" {
		if err := rerender(*render, *out); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		return 0
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			switch s {
			case "throughput", "latency", "failover", "startup", "outage", "udp", "view", "baseline":
				want[s] = true
			default:
				fmt.Fprintf(stderr, "bench: --only %q: unknown scenario\n", s)
				return 2
			}
		}
	}
	var baseRev string
	if *baseline != "" {
		out, err := exec.Command("git", "rev-parse", "--verify", "--quiet", *baseline+"^{commit}").Output()
		if err != nil {
			fmt.Fprintf(stderr, "bench: --baseline %q: not a commit of this repository\n", *baseline)
			return 2
		}
		baseRev = strings.TrimSpace(string(out))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var specs []seed.Spec
	if *scales != "" {
		for _, s := range strings.Split(*scales, ",") {
			spec, err := seed.Parse("scale:" + strings.TrimSpace(s))
			if err != nil {
				fmt.Fprintf(stderr, "bench: --scales: %v\n", err)
				return 2
			}
			specs = append(specs, spec)
		}
		if len(specs) != 2 {
			fmt.Fprintln(stderr, "bench: --scales wants two scales, small and large, e.g. 5x100,10x300")
			return 2
		}
	}
	if err := runBench(ctx, stdout, stderr, *quick, *pairs, *out, *results, *profile, baseRev, want, specs); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

func runBench(ctx context.Context, stdout, logw io.Writer, quick bool, pairs int, out, resultsDir, profile, baseRev string, want map[string]bool, specs []seed.Spec) error {
	started := time.Now()
	dir, err := os.MkdirTemp("", "kubefwd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if profile != "" {
		if profile, err = filepath.Abs(profile); err != nil {
			return err
		}
	}

	fmt.Fprintln(logw, "bench: building kubefwd")
	kubefwd := filepath.Join(dir, "kubefwd")
	footprint, err := buildKubefwd(ctx, kubefwd)
	if err != nil {
		return err
	}
	var baselineBin string
	if baseRev != "" {
		fmt.Fprintf(logw, "bench: building kubefwd %.12s (--baseline)\n", baseRev)
		baselineBin = filepath.Join(dir, "kubefwd-baseline")
		if err := buildBaseline(ctx, baseRev, filepath.Join(dir, "baseline-src"), baselineBin); err != nil {
			return err
		}
	}
	fmt.Fprintln(logw, "bench: starting the devcluster")
	c, err := cluster.Start(ctx, cluster.Options{Log: logw})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c.Stop(sctx)
	}()
	if err := seed.Apply(ctx, c, seed.Spec{Name: "demo"}); err != nil {
		return fmt.Errorf("seed demo: %w", err)
	}
	b := &bench{c: c, kubefwd: kubefwd, settled: map[string]float64{}, kubectl: c.Binaries.Path("kubectl"), dir: dir, quick: quick, pairs: pairs, profile: profile,
		baseline: baselineBin, baselineRev: baseRev}

	small, large := seed.Spec{Name: "scale", Namespaces: 5, ServicesPerNamespace: 100}, seed.Spec{Name: "scale", Namespaces: 10, ServicesPerNamespace: 300}
	startupRuns := 3
	if quick {
		small, large = seed.Spec{Name: "scale", Namespaces: 2, ServicesPerNamespace: 10}, seed.Spec{Name: "scale", Namespaces: 3, ServicesPerNamespace: 20}
		startupRuns = 1
	}
	if len(specs) == 2 {
		small, large = specs[0], specs[1]
	}
	type step struct {
		name string
		run  func(context.Context) ([]Result, error)
	}
	steps := []step{
		{"throughput", b.throughput},
		{"latency", b.latency},
		{"failover", b.failover},
		// Before startup, whose thousands of Services slow the cluster down.
		{"outage", b.outage},
		{"udp", b.udp},
		{"startup", func(ctx context.Context) ([]Result, error) {
			var all []Result
			for _, s := range []struct {
				spec  seed.Spec
				runs  int
				cold  bool
				large bool
			}{{small, 1, true, false}, {small, startupRuns, false, false}, {large, 1, true, true}, {large, 1, false, true}} {
				fmt.Fprintf(logw, "bench: startup with %s (cold connections: %v)\n", s.spec, s.cold)
				r, err := b.startup(ctx, s.spec, s.runs, s.cold, s.large)
				if err != nil {
					return nil, err
				}
				all = append(all, r...)
			}
			return all, nil
		}},
		{"view", func(ctx context.Context) ([]Result, error) { return b.view(ctx, large) }},
	}
	if baselineBin != "" {
		steps = append(steps, step{"baseline", b.againstBaseline})
	}
	// A scenario that cannot run is a row in the report, not the end of
	// the run: the others' numbers are still worth having.
	results := []Result{footprint}
	var failed []string
	for _, s := range steps {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Fprintf(logw, "bench: %s\n", s.name)
		t0 := time.Now()
		r, err := s.run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(logw, "bench: %s failed: %v\n", s.name, err)
			failed = append(failed, s.name)
			failure := newResult(s.name, "could not run", goal{"runs", func(Result) bool { return false }})
			failure.Note = strings.ReplaceAll(err.Error(), "\n", " ")
			failure.finish()
			results = append(results, failure)
			continue
		}
		fmt.Fprintf(logw, "bench: %s done in %s\n", s.name, time.Since(t0).Round(time.Second))
		for i := range r {
			r[i].finish()
		}
		results = append(results, r...)
	}

	env := environment(ctx, c, kubefwd, b.kubectl, quick, pairs)
	if !quick && (len(want) > 0 || len(specs) > 0) {
		env.Mode = "partial" // some scenarios or other scales: not a report
	}
	env.Duration = time.Since(started).Round(time.Second).String()
	env.Profiles = profile
	report := Markdown(env, results, explain(env, results))
	fmt.Fprint(stdout, report)
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(struct {
		Environment Environment `json:"environment"`
		Results     []Result    `json:"results"`
	}{env, results}, "", "  ")
	if err != nil {
		return err
	}
	name := filepath.Join(resultsDir, fmt.Sprintf("%s-%s.json", env.Date.UTC().Format("20060102-150405"), env.Mode))
	if err := os.WriteFile(name, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(logw, "bench: raw numbers in %s\n", name)
	if !quick && len(want) == 0 && len(specs) == 0 {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(logw, "bench: report in %s\n", out)
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios that could not run: %s", strings.Join(failed, ", "))
	}
	return nil
}

func environment(ctx context.Context, c *cluster.Cluster, kubefwd, kubectl string, quick bool, pairs int) Environment {
	env := Environment{Date: time.Now(), Mode: "full", Pairs: pairs, Cores: runtime.NumCPU(), Go: runtime.Version()}
	if quick {
		env.Mode = "quick"
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if out, err := exec.CommandContext(ctx, kubefwd, "version", "--short").Output(); err == nil {
		env.Kubefwd = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, kubectl, "version", "--client", "-o", "json").Output(); err == nil {
		var v struct {
			ClientVersion struct{ GitVersion string } `json:"clientVersion"`
		}
		if json.Unmarshal(out, &v) == nil {
			env.Kubectl = v.ClientVersion.GitVersion
		}
	}
	if v, err := c.Clientset.Discovery().ServerVersion(); err == nil {
		env.Kubernetes = v.GitVersion
	}
	return env
}

// rerender writes the report again from saved numbers.
func rerender(results, out string) error {
	data, err := os.ReadFile(results)
	if err != nil {
		return err
	}
	var saved struct {
		Environment Environment `json:"environment"`
		Results     []Result    `json:"results"`
	}
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("%s: %w", results, err)
	}
	return os.WriteFile(out, []byte(Markdown(saved.Environment, saved.Results, explain(saved.Environment, saved.Results))), 0o644)
}

// buildKubefwd builds the kubefwd that is measured the way make dist builds
// a release (static, no symbol tables, no paths), so that its size and the
// executable's share of its memory are what users run, and reports the
// binary's size.
// buildBaseline builds kubefwd at commit the way buildKubefwd builds
// today's, in a worktree of its own under tree (removed after).
func buildBaseline(ctx context.Context, commit, tree, out string) error {
	if msg, err := exec.CommandContext(ctx, "git", "worktree", "add", "--detach", tree, commit).CombinedOutput(); err != nil {
		return fmt.Errorf("--baseline: git worktree add: %v\n%s", err, msg)
	}
	defer exec.Command("git", "worktree", "remove", "--force", tree).Run()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/kubefwd")
	build.Dir = tree
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("--baseline: go build at %.12s: %v\n%s", commit, err, msg)
	}
	return nil
}

func buildKubefwd(ctx context.Context, out string) (Result, error) {
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/kubefwd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("go build: %v\n%s", err, msg)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return Result{}, err
	}
	size := newResult("0 footprint", "binary MB (as released: static, stripped)", medianAtMost(40, "MB"))
	size.Kubefwd = []float64{float64(fi.Size()) / 1e6}
	deps, err := exec.CommandContext(ctx, "go", "list", "-deps", "./cmd/kubefwd").Output()
	if err != nil {
		return Result{}, fmt.Errorf("go list -deps: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(deps)), "\n")
	groups := 0
	for _, p := range lines {
		if strings.HasPrefix(p, "k8s.io/api/") {
			groups++
		}
	}
	size.Note = fmt.Sprintf("CGO_ENABLED=0 go build -trimpath -ldflags='-s -w', as make dist does; %d packages linked, %d of them Kubernetes API group versions (k8s.io/api)", len(lines), groups)
	size.finish()
	return size, nil
}
