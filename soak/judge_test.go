package main

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestJudge(t *testing.T) {
	ready := Readiness{}
	ready.Record("a/web", at(0), 2)
	ready.Record("a/api", at(0), 1)
	ready.Record("a/api", at(50), 0)
	ready.Record("a/api", at(60), 1)
	ready.Record("a/db/db-0", at(0), 1)
	faults := []Fault{
		{Kind: kindAPIServer, All: true, Start: at(100), End: at(120), Recovered: at(121)},
		{Kind: kindScaleZero, Affects: []string{"a/api"}, Start: at(200), End: at(210), Recovered: at(212)},
		{Kind: kindNamespace, Affects: []string{"b/"}, Start: at(300), End: at(330)}, // never recovered
		{Kind: kindRollout, Start: at(600), End: at(620), Recovered: at(620)},        // breaks nothing
		{Kind: kindDeleteLast, Affects: []string{"a/db"}, Start: at(500), End: at(505), Recovered: at(506)},
	}
	tests := []struct {
		name      string
		f         Failure
		fault     string
		noReplica bool
		during    string
	}{
		{"inside an outage that breaks everything", Failure{Target: "a/web", Start: at(110), End: at(111)}, kindAPIServer, false, ""},
		{"started before the outage, ended in it", Failure{Target: "a/web", Start: at(95), End: at(100.5)}, kindAPIServer, false, ""},
		{"after recovery: not excused", Failure{Target: "a/web", Start: at(121.5), End: at(122)}, "", false, ""},
		{"scale to zero excuses its own Service", Failure{Target: "a/api", Start: at(211), End: at(211.5)}, kindScaleZero, false, ""},
		{"but not another", Failure{Target: "a/web", Start: at(205), End: at(206)}, "", false, kindScaleZero},
		{"no ready replica", Failure{Target: "a/api", Start: at(55), End: at(56)}, "", true, ""},
		{"a replica went away during the request", Failure{Target: "a/api", Start: at(45), End: at(52)}, "", true, ""},
		{"a namespace fault covers its Services", Failure{Target: "b/web", Start: at(400), End: at(401)}, kindNamespace, false, ""},
		{"an unrecovered fault's window ends recoverWithin after it", Failure{Target: "b/web", Start: at(330 + recoverWithin.Seconds() + 1), End: at(425)}, "", true, ""},
		{"a rollout excuses nothing", Failure{Target: "a/web", Start: at(610), End: at(611)}, "", false, kindRollout},
		{"a Service's fault covers its pods' names", Failure{Target: "a/db/db-0", Start: at(505.5), End: at(506)}, kindDeleteLast, false, ""},
		{"unknown target: not known to be ready", Failure{Target: "a/new", Start: at(10), End: at(11)}, "", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := judge([]Failure{tc.f}, faults, ready)[0]
			if got.Fault != tc.fault || got.NoReplica != tc.noReplica || got.During != tc.during {
				t.Errorf("fault %q noReplica %v during %q, want %q %v %q", got.Fault, got.NoReplica, got.During, tc.fault, tc.noReplica, tc.during)
			}
		})
	}
}

func TestReadinessRecordsChangesOnly(t *testing.T) {
	r := Readiness{}
	r.Record("x", at(0), 1)
	r.Record("x", at(1), 1)
	r.Record("x", at(2), 0)
	if len(r["x"]) != 2 {
		t.Fatalf("steps = %v", r["x"])
	}
	if r.readyThroughout("x", at(-1), at(0.5)) {
		t.Error("ready before the first record")
	}
	if !r.readyThroughout("x", at(0.5), at(1.5)) || r.readyThroughout("x", at(0.5), at(2.5)) {
		t.Error("wrong readiness around the drop")
	}
}

func TestGrowth(t *testing.T) {
	var samples []Sample
	for i := range 20 { // one a minute
		s := Sample{At: at(float64(i * 60)), Goroutines: 100, FDs: 40, RSSKiB: 80 << 10, AtRest: true}
		if i >= 10 {
			s.Goroutines = 100 + 10*(i-9) // a leak: at rest, each minute more
		}
		if i == 12 {
			s.FDs = 60 // one busy moment
		}
		if i == 16 {
			s.Goroutines, s.AtRest = 5000, false // busy: not judged
		}
		samples = append(samples, s)
	}
	g := growth(samples, t0)
	if len(g) != 3 {
		t.Fatalf("growth = %+v", g)
	}
	// Later: samples 6..19 but 16 (13 of them); goroutines 100 ×4, then 110, 120, … 190 without 170.
	if g[0].Resource != "goroutines" || g[0].Baseline != 100 || g[0].Later != 130 || g[0].Max != 200 || g[0].Ratio() != 1.3 {
		t.Errorf("goroutines = %+v", g[0])
	}
	if g[1].Later != 40 || g[1].Max != 60 || g[1].Ratio() != 1 {
		t.Errorf("one busy moment is not growth: %+v", g[1])
	}
	if g[2].Ratio() != 1 {
		t.Errorf("rss = %+v", g[2])
	}
	if growth(samples[:6], t0) != nil {
		t.Error("no sample after minute 6 must give no figure")
	}

	// With the heap and tunnels sampled, they are reported, not judged.
	for i := range samples {
		samples[i].HeapKiB, samples[i].Tunnels = 30<<10, 4+i%2
	}
	g = growth(samples, t0)
	if len(g) != 5 || g[3].Resource != "Go heap in use MiB" || g[3].Later != 30 || g[4].Resource != "tunnels open" {
		t.Fatalf("growth with heap and tunnels = %+v", g)
	}
	if !g[2].judged() || g[3].judged() || g[4].judged() {
		t.Error("RSS is judged; the heap and tunnels only explain it")
	}
}

func TestScheduleDealsEveryKindAndHoldsKills(t *testing.T) {
	s := newSchedule(rand.New(rand.NewPCG(7, 1)), 10*time.Minute)
	counts := map[string]int{}
	for i := range 5 * len(allKinds) {
		elapsed := time.Duration(i) * 10 * time.Second // the half is reached at i = 60
		k := s.next(elapsed)
		if k == kindKill && elapsed < 10*time.Minute {
			t.Fatalf("kill -9 at %s, before the half", elapsed)
		}
		counts[k]++
	}
	for _, k := range allKinds {
		if counts[k] == 0 {
			t.Errorf("%q never came up: %v", k, counts)
		}
	}
	// The same seed deals the same schedule.
	a, b := newSchedule(rand.New(rand.NewPCG(9, 1)), 0), newSchedule(rand.New(rand.NewPCG(9, 1)), 0)
	for range 40 {
		if x, y := a.next(0), b.next(0); x != y {
			t.Fatalf("same seed, %q then %q", x, y)
		}
	}
}

func TestStaleNames(t *testing.T) {
	st := api.Status{Forwards: []api.Forward{
		{Namespace: "a", Service: "web", Address: "127.1.0.1", Names: []string{"web.a", "web.a.svc"}},
		{Namespace: "a", Service: "api", Address: "127.1.0.2", Names: []string{"api.a"}},
	}}
	block := func(lines string) string {
		return "127.0.0.1 localhost\n# kubefwd begin id1 pid=1\n" + lines + "# kubefwd end id1\n"
	}
	tests := []struct {
		name, content string
		want          int
	}{
		{"all current", block("127.1.0.1 web.a web.a.svc\n127.1.0.2 api.a\n"), 0},
		{"a Service gone", block("127.1.0.1 web.a web.a.svc\n127.1.0.3 old.a\n"), 1},
		{"an address changed", block("127.1.0.9 web.a web.a.svc\n"), 2},
		{"a second block", block("127.1.0.1 web.a\n") + "# kubefwd begin id2 pid=2\n127.1.0.2 api.a\n# kubefwd end id2\n", 1},
		{"a name twice", block("127.1.0.1 web.a\n127.1.0.1 web.a\n"), 1},
		{"user lines do not count", "10.0.0.1 old.a\n" + block(""), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleNames([]byte(tc.content), st); got != tc.want {
				t.Errorf("stale = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMarkdownJudgesTheGoals(t *testing.T) {
	r := &Results{Mode: "full", Seed: 1, Started: t0, Ended: at(1800), StableNames: 30, HostsUserBytesIntact: true,
		Faults: []Fault{
			{Kind: kindKwok, All: true, Start: at(10), End: at(15), Recovered: at(16)},
			{Kind: kindRefresh, Start: at(20), End: at(21)}, // never back
		},
		Failures: []Failure{
			{Client: "short", Target: "a/web", Start: at(12), End: at(13), Err: "EOF"},
			{Client: "echo", Target: "a/web", Start: at(500), End: at(501), Err: "connection reset"},
		},
		LogLines: map[string]int{"INFO": 300, "WARN": 30},
	}
	ready := Readiness{}
	ready.Record("a/web", t0, 2)
	r.Failures = judge(r.Failures, r.Faults, ready)
	r.finish()
	md := Markdown(r)
	for _, want := range []string{
		"| connections that failed while a ready replica existed | 1 | 0 | **fail** |",
		"| faults after which some name did not answer again within 1m30s | 1 | 0 | **fail** |",
		"| " + kindKwok + " | 1 | 0 | 1.00 | 1.00 | 0 | 1 |",
		"echo a/web: connection reset",
		"| kubefwd log lines per minute at INFO (WARN, ERROR) | 10.0 (1.0, 0.0) | reported | reported |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if v := r.quickVerdict(0); !strings.Contains(v, "1 connection(s) failed while a ready replica existed") {
		t.Errorf("quick verdict = %q", v)
	}
	if v := r.quickVerdict(1); strings.Contains(v, "failed while a ready replica existed") {
		t.Errorf("one lost connection, one tolerated: verdict = %q", v)
	}
}
