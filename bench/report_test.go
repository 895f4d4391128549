package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedianAndPercentile(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is a number")
	}
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i)
	}
	if p50, p99 := percentile(xs, 50), percentile(xs, 99); p50 != 50 || p99 != 99 {
		t.Errorf("p50 %v p99 %v", p50, p99)
	}
}

func TestPairRatios(t *testing.T) {
	r := Result{Kubefwd: []float64{200, 100, 300}, Kubectl: []float64{100, 100, 100}}
	r.pair()
	if len(r.Ratios) != 3 || r.Ratio != 2 {
		t.Errorf("ratios %v, median %v", r.Ratios, r.Ratio)
	}
	// kubectl's 0 (its listener was gone) gives no ratio, and the results
	// file can still be written.
	none := Result{Kubefwd: []float64{1}, Kubectl: []float64{0}}
	none.pair()
	if _, err := json.Marshal(none); err != nil || len(none.Ratios) != 0 {
		t.Errorf("ratios %v: %v", none.Ratios, err)
	}
}

func TestMarkdown(t *testing.T) {
	pass := Result{Scenario: "1 throughput", Metric: "MB/s", Kubefwd: []float64{250}, Kubectl: []float64{200}, Goal: "≥ 1.0× kubectl"}
	pass.pair()
	pass.Pass = judged(pass.Ratio >= 1)
	fail := Result{Scenario: "5 startup", Metric: "s", Kubefwd: []float64{4.5}, Goal: "≤ 3 s", Pass: judged(false), Note: "slow because …"}
	md := Markdown(Environment{Date: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), Mode: "full", Pairs: 5}, []Result{pass, fail}, nil)
	for _, want := range []string{"| 1 throughput | MB/s | 250 | 200 | 1.25× | ≥ 1.0× kubectl | pass |", "| 5 startup | s | 4.50 | — | — | ≤ 3 s | **fail** |", "- **5 startup, s:** slow because …"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestParseRequests(t *testing.T) {
	raw := `# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="namespace",subresource="",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="namespace",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="portforward",verb="CONNECT",version="v1"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="namespace",subresource="",verb="PUT",version="v1"} 40
`
	r, err := parseRequests([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.list["services"] != 3 || r.watch["services"] != 2 || r.total() != 5 {
		t.Errorf("counts %+v", r)
	}
}

// The notes say "does not separate" only when the per-pair ratios fall on
// both sides of parity, carry only this run's numbers, and point at this
// run's profiles when there are any.
func TestExplain(t *testing.T) {
	missed := func(ratios ...float64) Result {
		r := Result{Scenario: "1 throughput", Metric: "MB/s", Goal: "≥ 1.0× kubectl", Ratios: ratios, Ratio: median(ratios)}
		r.Pass = judged(false)
		return r
	}
	tests := []struct {
		name     string
		env      Environment
		r        Result
		want     []string
		wantNone []string
	}{
		{"spread includes parity", Environment{}, missed(0.9, 0.97, 1.05),
			[]string{"from 0.90× to 1.05×", "does not separate the two tools"}, []string{"profiles"}},
		{"every pair short", Environment{}, missed(0.8, 0.85, 0.9),
			[]string{"from 0.80× to 0.90×", "every pair fell short"}, []string{"does not separate"}},
		{"profiles of this run", Environment{Profiles: "/tmp/prof"}, missed(0.8, 0.9),
			[]string{"`/tmp/prof`"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notes := strings.Join(explain(tt.env, []Result{tt.r}), "\n")
			for _, w := range tt.want {
				if !strings.Contains(notes, w) {
					t.Errorf("notes lack %q:\n%s", w, notes)
				}
			}
			for _, w := range tt.wantNone {
				if strings.Contains(notes, w) {
					t.Errorf("notes say %q:\n%s", w, notes)
				}
			}
		})
	}
	// No fixed figures: the text for every missed goal, rendered from a
	// results file with none of these numbers, holds no number but the
	// run's own.
	all := []Result{missed(0.8, 0.9),
		{Scenario: "1 throughput ceiling", Metric: "kubefwd / direct stream", Kubefwd: []float64{0.7}, Goal: "≥ 0.9", Pass: judged(false)},
		{Scenario: "5 startup, 20 Services", Metric: "s until every Service answers", Kubefwd: []float64{4}, Goal: "≤ 3 s", Pass: judged(false)},
		{Scenario: "5 startup, 20 Services", Metric: "RSS MB once settled", Kubefwd: []float64{90}, Goal: "≤ 80 MB", Pass: judged(false)},
	}
	notes := strings.Join(explain(Environment{}, all), "\n")
	for _, fixed := range []string{"quarter", "0.9;", "64 MiB", "117", "0.8 MB", "sixth", "kubectl pays"} {
		if strings.Contains(notes, fixed) {
			t.Errorf("notes carry the fixed figure %q:\n%s", fixed, notes)
		}
	}
}

// Each row is judged by its own goal on its own numbers, and the goal's
// text in the table is the one the check uses.
func TestGoals(t *testing.T) {
	zero := func(v float64) bool { return v == 0 }
	for _, tc := range []struct {
		name             string
		g                goal
		kubefwd, kubectl []float64
		text             string
		pass             *bool
	}{
		{"ratio met", ratioAtLeast(1), []float64{250, 90}, []float64{200, 100}, "≥ 1.0× kubectl", judged(true)}, // ratios 1.25, 0.9: median 1.075
		{"ratio missed", ratioAtLeast(1), []float64{90, 95}, []float64{100, 100}, "≥ 1.0× kubectl", judged(false)},
		{"ratio at most", ratioAtMost(1), []float64{1.2}, []float64{1}, "≤ 1.0× kubectl", judged(false)},
		{"no kubectl runs, no ratio", ratioAtLeast(1), []float64{250}, nil, "≥ 1.0× kubectl", judged(false)},
		{"median at most", medianAtMost(3, "s"), []float64{2, 4, 2.5}, nil, "≤ 3 s", judged(true)},
		{"median at least, no unit", medianAtLeast(0.9, ""), []float64{0.85}, nil, "≥ 0.9", judged(false)},
		{"every run, one miss", everyRun("kubefwd 0", zero), []float64{0, 1, 0}, nil, "kubefwd 0", judged(false)},
		{"every run, all met", everyRun("kubefwd 0", zero), []float64{0, 0}, nil, "kubefwd 0", judged(true)},
		{"every run, no run", everyRun("kubefwd 0", zero), nil, nil, "kubefwd 0", judged(false)},
		{"reported", reported, []float64{7}, []float64{8}, "reported", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResult("s", "m", tc.g)
			r.Kubefwd, r.Kubectl = tc.kubefwd, tc.kubectl
			r.pair()
			r.finish()
			if r.Goal != tc.text {
				t.Errorf("goal text %q, want %q", r.Goal, tc.text)
			}
			switch {
			case tc.pass == nil && r.Pass != nil:
				t.Errorf("a reported row was judged %v", *r.Pass)
			case tc.pass != nil && (r.Pass == nil || *r.Pass != *tc.pass):
				t.Errorf("judged %v, want %v (ratios %v)", r.Pass, *tc.pass, r.Ratios)
			}
		})
	}
}

// A kubefwd-only row that missed lists its runs: a median of 0.00 with one
// run at 35 s says which run missed.
func TestExplainListsRunsOfMissedRows(t *testing.T) {
	r := newResult("7 API outage", "s back", everyRun("≤ 5 s", func(v float64) bool { return v <= 5 }))
	r.Kubefwd = []float64{0.002, 0.0019, 35.19}
	r.finish()
	notes := strings.Join(explain(Environment{}, []Result{r}), "\n")
	if want := "kubefwd's 3 runs, in order: 0.00, 0.00, 35.2"; !strings.Contains(notes, want) {
		t.Errorf("notes lack %q:\n%s", want, notes)
	}
	one := newResult("s", "m", medianAtMost(3, "s"))
	one.Kubefwd = []float64{4}
	one.finish()
	if notes := explain(Environment{}, []Result{one}); len(notes) != 0 {
		t.Errorf("a single run needs no list: %q", notes)
	}
}
