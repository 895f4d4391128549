package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one scenario's outcome, for the table and the JSON file.
type Result struct {
	Scenario string `json:"scenario"`
	Metric   string `json:"metric"` // what the numbers are, with their unit
	// Raw numbers, in run order (pairs: kubefwd[i] ran next to kubectl[i]).
	Kubefwd []float64 `json:"kubefwd"`
	Kubectl []float64 `json:"kubectl,omitempty"`
	// Against names what the second column ran instead of kubectl (an
	// earlier kubefwd, for --baseline); "" for kubectl.
	Against string `json:"against,omitempty"`
	// Ratios are kubefwd/kubectl per pair; Ratio is their median.
	Ratios []float64 `json:"ratios,omitempty"`
	Ratio  float64   `json:"ratio,omitempty"`
	// Goal in words, and whether it is met.
	Goal string `json:"goal"`
	Pass *bool  `json:"pass,omitempty"` // nil: reported, not judged
	Note string `json:"note,omitempty"`

	target goal // what Goal says, as a check; see newResult
}

// goal is a row's target, stated once: the table's text and the check that
// judges the row's own numbers come from the same value.
type goal struct {
	text  string
	check func(Result) bool // nil: reported, not judged
}

var reported = goal{text: "reported"}

// ratioAtLeast and ratioAtMost judge the median per-pair ratio to kubectl.
func ratioAtLeast(x float64) goal { return ratioAtLeastOf(x, "kubectl") }

func ratioAtMost(x float64) goal { return ratioAtMostOf(x, "kubectl") }

// ratioAtLeastOf and ratioAtMostOf judge the median per-pair ratio to what
// ran in the second column.
func ratioAtLeastOf(x float64, what string) goal {
	return goal{fmt.Sprintf("≥ %s× %s", factor(x), what), func(r Result) bool { return len(r.Ratios) > 0 && r.Ratio >= x }}
}

func ratioAtMostOf(x float64, what string) goal {
	return goal{fmt.Sprintf("≤ %s× %s", factor(x), what), func(r Result) bool { return len(r.Ratios) > 0 && r.Ratio <= x }}
}

// factor writes x with a decimal always: 1.0, 0.95.
func factor(x float64) string {
	if x == float64(int64(x)) {
		return fmt.Sprintf("%.1f", x)
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// medianAtLeast and medianAtMost judge the median of kubefwd's runs.
func medianAtLeast(x float64, unit string) goal {
	return goal{strings.TrimSpace(fmt.Sprintf("≥ %g %s", x, unit)), func(r Result) bool { return len(r.Kubefwd) > 0 && r.KubefwdMedian() >= x }}
}

func medianAtMost(x float64, unit string) goal {
	return goal{strings.TrimSpace(fmt.Sprintf("≤ %g %s", x, unit)), func(r Result) bool { return len(r.Kubefwd) > 0 && r.KubefwdMedian() <= x }}
}

// everyRun judges each of kubefwd's runs: one miss misses the goal.
func everyRun(text string, ok func(float64) bool) goal {
	return goal{text, func(r Result) bool {
		for _, v := range r.Kubefwd {
			if !ok(v) {
				return false
			}
		}
		return len(r.Kubefwd) > 0
	}}
}

// newResult starts a row with its goal.
func newResult(scenario, metric string, g goal) Result {
	return Result{Scenario: scenario, Metric: metric, Goal: g.text, target: g}
}

// finish judges the row by its goal (rows compared with kubectl call pair
// first; counts such as failed requests have no meaningful ratio).
func (r *Result) finish() {
	if r.target.check != nil {
		r.Pass = judged(r.target.check(*r))
	}
}

// KubefwdMedian and KubectlMedian summarise the runs.
func (r Result) KubefwdMedian() float64 { return median(r.Kubefwd) }
func (r Result) KubectlMedian() float64 { return median(r.Kubectl) }

// pair fills the per-pair ratios and their median.
func (r *Result) pair() {
	r.Ratios = nil
	for i := range min(len(r.Kubefwd), len(r.Kubectl)) {
		if r.Kubectl[i] != 0 {
			r.Ratios = append(r.Ratios, r.Kubefwd[i]/r.Kubectl[i])
		}
	}
	r.Ratio = 0 // JSON has no NaN: no ratio is none at all
	if len(r.Ratios) > 0 {
		r.Ratio = median(r.Ratios)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the p-th percentile (0-100) by nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(rank, len(s)-1))]
}

func judged(ok bool) *bool { return &ok }

// Environment describes where the numbers come from.
type Environment struct {
	Date       time.Time `json:"date"`
	Mode       string    `json:"mode"` // full or quick
	Pairs      int       `json:"pairs"`
	CPU        string    `json:"cpu"`
	Cores      int       `json:"cores"`
	Kernel     string    `json:"kernel"`
	Go         string    `json:"go"`
	Kubefwd    string    `json:"kubefwd"`
	Kubectl    string    `json:"kubectl"`
	Kubernetes string    `json:"kubernetes"`
	Duration   string    `json:"duration"`
	// Profiles is where kubefwd's profiles of this run were written
	// (--profile-dir), if anywhere.
	Profiles string `json:"profiles,omitempty"`
}

// Markdown renders BENCHMARKS.md.
func Markdown(env Environment, results []Result, notes []string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Measured by `make bench` (`go run ./bench`) against the devcluster: a real kube-apiserver, kwok\n")
	b.WriteString("as kubelets and real local backends. kubefwd and `kubectl port-forward` (the kubectl built with the\n")
	b.WriteString("cluster, same version) ran in one run, alternately (kubefwd, kubectl, kubefwd, …), so machine noise\n")
	b.WriteString("falls on both; the ratio is the median of the per-pair ratios. Raw numbers are in `bench/results/`.\n\n")
	fmt.Fprintf(&b, "%s mode, %d pairs · %s · %s · %d cores · %s · %s\n\n",
		env.Mode, env.Pairs, env.Date.UTC().Format("2006-01-02 15:04 MST"), env.CPU, env.Cores, env.Kernel, env.Go)
	fmt.Fprintf(&b, "kubefwd %s · kubectl %s · Kubernetes %s · the run took %s\n\n", env.Kubefwd, env.Kubectl, env.Kubernetes, env.Duration)
	b.WriteString("| scenario | metric | kubefwd | kubectl | ratio | goal | result |\n")
	b.WriteString("|---|---|--:|--:|--:|---|---|\n")
	for _, r := range results {
		kubectl, ratio := "—", "—"
		if len(r.Kubectl) > 0 {
			kubectl = num(r.KubectlMedian())
			if r.Against != "" {
				kubectl += " (" + r.Against + ")"
			}
		}
		if len(r.Ratios) > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		verdict := "reported"
		if r.Pass != nil {
			verdict = "**fail**"
			if *r.Pass {
				verdict = "pass"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Metric, num(r.KubefwdMedian()), kubectl, ratio, r.Goal, verdict)
	}
	var explained []Result
	for _, r := range results {
		if r.Note != "" {
			explained = append(explained, r)
		}
	}
	if len(explained) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, r := range explained {
			fmt.Fprintf(&b, "- **%s, %s:** %s\n", r.Scenario, r.Metric, r.Note)
		}
	}
	for _, n := range notes {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v == math.Trunc(v) && math.Abs(v) < 1e6:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// includesParity says whether the per-pair ratios fall on both sides of
// 1.0: then this run cannot tell the two tools apart on that metric.
func includesParity(ratios []float64) bool {
	return len(ratios) > 0 && slices.Min(ratios) <= 1 && slices.Max(ratios) >= 1
}

// explain adds, for each goal a run missed, what this run measured about
// it, and why the structure of the setup matters. Notes carry only numbers
// from the results they are given (so --render of an old file says nothing
// that run did not measure) and no profiling claims: where profiles were
// taken (--profile-dir), the note says where they are, to be read.
func explain(env Environment, results []Result) []string {
	missed := map[string]bool{}
	for _, r := range results {
		if r.Pass != nil && !*r.Pass {
			missed[r.Metric] = true
		}
	}
	profiles := ""
	if env.Profiles != "" {
		profiles = fmt.Sprintf(" kubefwd's CPU and allocation profiles of this run are in `%s` (`go tool pprof`).", env.Profiles)
	}
	var notes []string
	for _, r := range results {
		if r.Pass == nil || *r.Pass || len(r.Ratios) == 0 {
			continue
		}
		lo, hi := slices.Min(r.Ratios), slices.Max(r.Ratios)
		verdict := "every pair fell short, so the miss is not noise"
		if includesParity(r.Ratios) {
			verdict = "the spread includes parity, so this run does not separate the two tools"
		}
		notes = append(notes, fmt.Sprintf("**%s, %s: missed by %.0f%%.** The %d per-pair ratios ran from %.2f× to %.2f×: %s.%s",
			r.Scenario, r.Metric, 100*math.Abs(r.Ratio-1), len(r.Ratios), lo, hi, verdict, profiles))
	}
	// A kubefwd-only row shows the median of its runs; when it missed, the
	// runs themselves say whether one run or all of them did.
	for _, r := range results {
		if r.Pass == nil || *r.Pass || len(r.Ratios) > 0 || len(r.Kubefwd) < 2 {
			continue
		}
		runs := make([]string, len(r.Kubefwd))
		for i, v := range r.Kubefwd {
			runs[i] = num(v)
		}
		notes = append(notes, fmt.Sprintf("**%s, %s: missed (goal %s).** kubefwd's %d runs, in order: %s; the table shows their median.",
			r.Scenario, r.Metric, r.Goal, len(r.Kubefwd), strings.Join(runs, ", ")))
	}
	if missed["kubefwd / direct stream"] {
		notes = append(notes, "**Throughput ceiling.** The direct stream is the bench process reading the port-forward "+
			"stream itself, with no listener and no second process; kubefwd adds a loopback TCP hop and a process "+
			"switch, as kubectl port-forward does, on the same cores as the apiserver, kwok and the backend."+profiles)
	}
	by := func(metric, unit string) string {
		var parts []string
		for _, r := range results {
			if r.Metric == metric && r.Pass != nil && !*r.Pass {
				parts = append(parts, fmt.Sprintf("%s %s (%s, goal %s)", num(r.KubefwdMedian()), unit,
					strings.TrimPrefix(r.Scenario, "5 startup, "), r.Goal))
			}
		}
		return "Missed: " + strings.Join(parts, "; ") + ". "
	}
	if missed["s until every Service answers"] {
		notes = append(notes, "**Startup time.** "+by("s until every Service answers", "s")+"The names-written rows "+
			"of the same run show when every listener was open and every name in the hosts file; the rest is the "+
			"first connection to each Service, which needs a connection through the apiserver to its pod (TLS to the apiserver, "+
			"an upgrade, and the apiserver's own connection to the node)."+profiles)
	}
	if missed["RSS MB once settled"] {
		notes = append(notes, "**Memory once settled.** "+by("RSS MB once settled", "MB")+"The anonymous row of the "+
			"same run is what is not the executable's own (file-backed, shared) pages; the rows under it split that "+
			"by the Go runtime's own figures at the same moment: the heap in use (the caches of Services and "+
			"EndpointSlices, the forwards), freed heap not yet returned to the system, and goroutine stacks."+profiles)
	}
	return notes
}
