package main

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Fault is one fault the soak caused: what, to what, and when.
type Fault struct {
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"` // "ns/svc", "ns", or "" for the whole instance
	// Affects lists the targets ("ns/svc" or "ns/svc/pod", or a namespace
	// "ns/" for all of it) whose connections the fault may legitimately
	// break; All says every one. A fault that affects nothing (a rolling
	// restart, a refresh) must break no connection at all.
	Affects []string  `json:"affects,omitempty"`
	All     bool      `json:"all,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"` // when the fault was undone (the apiserver back, SIGCONT sent, …)
	// Recovered is when every affected name answered again (zero: not
	// within recoverWithin of End).
	Recovered time.Time `json:"recovered"`
	Err       string    `json:"error,omitempty"` // the soak could not cause or undo it
}

// recoverWithin bounds how long after a fault's end its names may take to
// answer again; after that the fault is reported as not recovered and its
// window ends.
const recoverWithin = 90 * time.Second

// windowEnd is when the fault stops excusing failures.
func (f Fault) windowEnd() time.Time {
	if !f.Recovered.IsZero() {
		return f.Recovered
	}
	return f.End.Add(recoverWithin)
}

func (f Fault) affects(target string) bool {
	if f.All {
		return true
	}
	for _, a := range f.Affects {
		// "ns/svc" covers its pods' names ("ns/svc/pod"), "ns/" a namespace.
		if target == a || strings.HasPrefix(target, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

// Failure is one client operation that did not complete as it should.
type Failure struct {
	Client string    `json:"client"` // short, download, echo
	Target string    `json:"target"` // ns/svc or ns/svc/pod
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Err    string    `json:"error"`
	// Set by judge.
	Fault     string `json:"fault,omitempty"`      // the fault kind that excuses it
	NoReplica bool   `json:"no_replica,omitempty"` // the target had no ready replica at some point
	During    string `json:"during,omitempty"`     // for an unexcused failure: the faults running then
}

// Readiness is how many ready replicas each target had over time: a
// step function per target, changes in time order.
type Readiness map[string][]Step

// Step is a target's ready count from At on.
type Step struct {
	At    time.Time
	Ready int
}

// Record notes target's ready count at t (in time order per target).
func (r Readiness) Record(target string, t time.Time, ready int) {
	steps := r[target]
	if n := len(steps); n > 0 && steps[n-1].Ready == ready {
		return
	}
	r[target] = append(steps, Step{t, ready})
}

// readyThroughout reports whether target had a ready replica from start to
// end. Before its first record a target is not known to be ready.
func (r Readiness) readyThroughout(target string, start, end time.Time) bool {
	steps := r[target]
	i := sort.Search(len(steps), func(i int) bool { return steps[i].At.After(start) })
	if i == 0 || steps[i-1].Ready < 1 {
		return false
	}
	for ; i < len(steps) && !steps[i].At.After(end); i++ {
		if steps[i].Ready < 1 {
			return false
		}
	}
	return true
}

// judge classifies each failure: excused by a fault that may break its
// target and whose window it overlaps, else excused because its target
// had no ready replica, else unexcused (the goal is none). It returns the
// failures with their class set.
func judge(failures []Failure, faults []Fault, ready Readiness) []Failure {
	out := slices.Clone(failures)
	for i := range out {
		f := &out[i]
		var during []string
		for _, ft := range faults {
			overlaps := !f.End.Before(ft.Start) && !f.Start.After(ft.windowEnd())
			if !overlaps {
				continue
			}
			if ft.affects(f.Target) {
				f.Fault = ft.Kind
				break
			}
			during = append(during, ft.Kind)
		}
		if f.Fault != "" {
			continue
		}
		if !ready.readyThroughout(f.Target, f.Start, f.End) {
			f.NoReplica = true
			continue
		}
		f.During = joinUnique(during)
	}
	return out
}

func joinUnique(xs []string) string {
	slices.Sort(xs)
	return strings.Join(slices.Compact(xs), ", ")
}

// Sample is one reading of a kubefwd process's resources.
type Sample struct {
	At         time.Time `json:"at"`
	Pid        int       `json:"pid"`
	Uptime     float64   `json:"uptime_s"` // since this process started
	RSSKiB     int       `json:"rss_kib"`
	FDs        int       `json:"fds"`
	Goroutines int       `json:"goroutines"` // -1: could not be read
	// HeapKiB is the Go heap in use (go_memstats_heap_inuse_bytes) and
	// Tunnels the tunnels open: what RSS is made of, to tell a leak from
	// memory the runtime keeps or tunnels that traffic opened. -1: could
	// not be read (0 in results from before they were sampled).
	HeapKiB int  `json:"heap_inuse_kib"`
	Tunnels int  `json:"tunnels"`
	AtRest  bool `json:"at_rest"` // no fault running, none for 30 s
}

// Growth compares a resource at rest after the first five minutes with
// the rest of the run (goroutines, files and RSS are judged; the Go heap and
// the tunnels open are there to explain RSS): Baseline is the median of the at-rest samples in
// the sixth minute, Later the median of every later one (a leak moves it;
// one busy moment does not), Max the highest later one, for the record.
type Growth struct {
	Resource string  `json:"resource"`
	Baseline float64 `json:"baseline"`
	Later    float64 `json:"later"`
	Max      float64 `json:"max"`
	Samples  int     `json:"samples"`
}

// judged says whether the soak's goal of no growth applies: to goroutines,
// open files and RSS (the goal), not to what explains RSS.
func (g Growth) judged() bool {
	switch g.Resource {
	case "goroutines", "open file descriptors", "RSS MiB":
		return true
	}
	return false
}

// Ratio is Later over Baseline (0 when there is no baseline).
func (g Growth) Ratio() float64 {
	if g.Baseline <= 0 {
		return 0
	}
	return g.Later / g.Baseline
}

// growth compares, for each resource, the median of the samples at rest
// in the sixth minute of the run (or the first at rest after it) with the
// median of those after that. A restarted process starts afresh, which can
// only lower later samples; the soak keeps kill -9 to the run's second half
// so that one process lives through most of the rest.
func growth(samples []Sample, started time.Time) []Growth {
	from := started.Add(5 * time.Minute)
	var base, later []Sample
	for _, s := range samples {
		if !s.AtRest || s.At.Before(from) || s.Goroutines < 0 {
			continue
		}
		if len(base) == 0 || s.At.Sub(base[0].At) < time.Minute {
			base = append(base, s)
		} else {
			later = append(later, s)
		}
	}
	if len(base) == 0 || len(later) == 0 {
		return nil
	}
	read := []struct {
		name string
		get  func(Sample) float64
	}{
		{"goroutines", func(s Sample) float64 { return float64(s.Goroutines) }},
		{"open file descriptors", func(s Sample) float64 { return float64(s.FDs) }},
		{"RSS MiB", func(s Sample) float64 { return float64(s.RSSKiB) / 1024 }},
		{"Go heap in use MiB", func(s Sample) float64 { return float64(s.HeapKiB) / 1024 }},
		{"tunnels open", func(s Sample) float64 { return float64(s.Tunnels) }},
	}
	var out []Growth
	for _, r := range read {
		var bs, ls []float64
		for _, s := range base {
			bs = append(bs, r.get(s))
		}
		for _, s := range later {
			ls = append(ls, r.get(s))
		}
		if slices.Max(bs) <= 0 && slices.Max(ls) <= 0 {
			continue // not sampled (results from before it was)
		}
		out = append(out, Growth{Resource: r.name, Baseline: median(bs), Later: median(ls), Max: slices.Max(ls), Samples: len(later)})
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// KindSummary is what one fault kind did over the run.
type KindSummary struct {
	Kind           string  `json:"kind"`
	Count          int     `json:"count"`
	NotCaused      int     `json:"not_caused"`      // the soak could not cause or undo it
	NotRecovered   int     `json:"not_recovered"`   // names still not answering recoverWithin after its end
	RecoverP50     float64 `json:"recover_p50_s"`   // fault end to every affected name answering
	RecoverMax     float64 `json:"recover_max_s"`   //
	FailuresInside int     `json:"failures_inside"` // failures it excused
}

func summarize(faults []Fault, judged []Failure) []KindSummary {
	by := map[string]*KindSummary{}
	var recov = map[string][]float64{}
	for _, f := range faults {
		k := by[f.Kind]
		if k == nil {
			k = &KindSummary{Kind: f.Kind}
			by[f.Kind] = k
		}
		k.Count++
		switch {
		case f.Err != "":
			k.NotCaused++
		case f.Recovered.IsZero():
			k.NotRecovered++
		default:
			recov[f.Kind] = append(recov[f.Kind], f.Recovered.Sub(f.End).Seconds())
		}
	}
	for _, f := range judged {
		if k := by[f.Fault]; k != nil {
			k.FailuresInside++
		}
	}
	var out []KindSummary
	for kind, k := range by {
		if r := recov[kind]; len(r) > 0 {
			k.RecoverP50 = median(r)
			k.RecoverMax = slices.Max(r)
		}
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b KindSummary) int { return cmp.Compare(a.Kind, b.Kind) })
	return out
}
