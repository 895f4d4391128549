package main

import (
	"fmt"
	"math"
	"slices"
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
	// Ratios are kubefwd/kubectl per pair; Ratio is their median.
	Ratios []float64 `json:"ratios,omitempty"`
	Ratio  float64   `json:"ratio,omitempty"`
	// Goal in words, and whether it is met.
	Goal string `json:"goal"`
	Pass *bool  `json:"pass,omitempty"` // nil: reported, not judged
	Note string `json:"note,omitempty"`
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
	r.Ratio = median(r.Ratios)
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

// spans says whether the spread of ratios includes parity.
func spans(lo, hi float64) string {
	if lo <= 1 && hi >= 1 {
		return " (the spread includes parity)"
	}
	return ""
}

// explain says, for each goal a run missed, what the time or memory goes
// to and what was tried, as far as this code base knows it.
func explain(results []Result) []string {
	missed := map[string]bool{}
	for _, r := range results {
		if r.Pass != nil && !*r.Pass {
			missed[r.Metric] = true
		}
	}
	var notes []string
	for _, r := range results {
		if r.Pass == nil || *r.Pass || len(r.Ratios) == 0 {
			continue
		}
		lo, hi := slices.Min(r.Ratios), slices.Max(r.Ratios)
		notes = append(notes, fmt.Sprintf("**%s, %s: missed by %.0f%%.** The per-pair ratios ran from %.2f× to %.2f×, so "+
			"this run does not separate the two tools%s. Both carry the same bytes through the same client-go stream code "+
			"and one local TCP hop; profiled, kubefwd's time goes to system calls (reading the tunnel, writing the client "+
			"socket, about equal), TLS decryption and copying — none of it in code of ours that could be cut.",
			r.Scenario, r.Metric, 100*math.Abs(r.Ratio-1), lo, hi, spans(lo, hi)))
	}
	if missed["kubefwd / direct stream"] {
		notes = append(notes, "**Throughput ceiling.** The direct stream is the bench process reading the port-forward "+
			"stream itself, with no listener and no second process: kubefwd adds a loopback TCP hop (a copy and two system "+
			"calls per frame) and a process switch, which on two cores shared with the apiserver, kwok and the backend "+
			"costs about a quarter. Small runs (64 MiB) reach 0.9; over 1 GiB the difference holds. kubectl port-forward "+
			"has the same hop.")
	}
	by := func(metric, unit string, goal float64) string {
		var parts []string
		for _, r := range results {
			if r.Metric == metric && r.Pass != nil && !*r.Pass {
				parts = append(parts, fmt.Sprintf("%s %s against %s (%s)", num(r.KubefwdMedian()), unit, num(goal),
					strings.TrimPrefix(r.Scenario, "5 startup, ")))
			}
		}
		return "Missed: " + strings.Join(parts, "; ") + ". "
	}
	if missed["s until every Service answers"] {
		notes = append(notes, "**Startup time.** "+by("s until every Service answers", "s", 3)+"kubefwd itself is ready quickly: the names-written rows show when every "+
			"listener is open and every name is in the hosts file, from two watches per namespace. The rest is the first "+
			"connection to each Service, which needs a tunnel to its pod: a TCP connection and TLS handshake to the "+
			"apiserver, an upgrade, and the apiserver's own connection to the node. Profiled, kubefwd's CPU in that phase "+
			"goes to the TLS handshakes (about a quarter: RSA signatures with the devcluster's client certificate), to "+
			"initialising each SPDY connection's zlib header compressor (about a sixth) and to system calls; the apiserver "+
			"and kwok need as much again, on the same two cores. Tried: a TLS session cache so later tunnels resume "+
			"instead of a full handshake — it works for SPDY tunnels, but client-go's WebSocket dialer (the default "+
			"transport) builds its TLS configuration privately per tunnel, so it cannot share one; doing that would mean "+
			"writing our own WebSocket upgrade. Opening tunnels ahead of the first connection would move, not remove, "+
			"the cost and would hold a tunnel per pod whether used or not.")
	}
	if missed["RSS MB once settled"] {
		notes = append(notes, "**Memory once settled.** "+by("RSS MB once settled", "MB", 80)+"Most of kubefwd's resident memory is the executable itself "+
			"(file-backed pages of client-go, the API types and the runtime, shared with the page cache; the "+
			"anonymous row is the rest). What grows with the number of Services is one listener and its "+
			"accept goroutine per Service and the two informers' objects; managed fields and annotations are dropped "+
			"before they are cached (3,000 Services: 117 → 111 MB).")
	}
	for _, r := range results {
		if strings.HasPrefix(r.Metric, "peak RSS") {
			notes = append(notes, "**Peak memory with every Service connected.** Each open tunnel is a SPDY connection, and "+
				"SPDY compresses headers with zlib at its best level, which the protocol requires: about 0.8 MB per tunnel "+
				"while it is open. Tunnels close after two minutes without traffic, so this is the price of having just "+
				"used every Service at once; kubectl pays the same per port-forward, plus a process each.")
			break
		}
	}
	return notes
}
