package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Results is everything a run measured; the results file holds it whole.
type Results struct {
	Mode     string    `json:"mode"` // full or quick
	Seed     uint64    `json:"seed"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"` // when the last fault ended
	Services int       `json:"names"` // names the clients reach at the start
	Cores    int       `json:"cores"`
	Go       string    `json:"go"`

	Faults         []Fault        `json:"faults"`
	Failures       []Failure      `json:"failures"` // judged
	Completed      map[string]int `json:"completed"`
	EchoReconnects int            `json:"echo_reconnects"`
	StableNames    int            `json:"stable_names"`
	AddressChanges []string       `json:"address_changes"`
	StaleAfterKill []int          `json:"stale_after_kill"`
	StaleAtEnd     int            `json:"stale_at_end"` // kubefwd lines and markers left after it stopped
	// HostsUserBytesIntact: after kubefwd stopped, the file is exactly the
	// user's lines and the other program's, byte for byte.
	HostsUserBytesIntact bool           `json:"hosts_user_bytes_intact"`
	HostsFindings        []string       `json:"hosts_findings"`
	StopSeconds          float64        `json:"stop_s"`
	StopError            string         `json:"stop_error,omitempty"`
	Samples              []Sample       `json:"samples"`
	Growth               []Growth       `json:"growth"`
	LogLines             map[string]int `json:"log_lines"`

	Kinds      []KindSummary `json:"kinds"`
	Unexcused  int           `json:"unexcused_failures"`
	NoReplica  int           `json:"failures_without_ready_replica"`
	InsideWins int           `json:"failures_inside_fault_windows"`
}

func (r *Results) finish() {
	r.Kinds = summarize(r.Faults, r.Failures)
	r.Unexcused, r.NoReplica, r.InsideWins = 0, 0, 0
	for _, f := range r.Failures {
		switch {
		case f.Fault != "":
			r.InsideWins++
		case f.NoReplica:
			r.NoReplica++
		default:
			r.Unexcused++
		}
	}
}

func (r *Results) minutes() float64 { return r.Ended.Sub(r.Started).Minutes() }

// quickVerdict is what soak-quick fails on: a fault it could not cause,
// or more than tolerate connections lost while a ready replica existed.
func (r *Results) quickVerdict(tolerate int) string {
	var bad []string
	for _, k := range r.Kinds {
		if k.NotCaused > 0 {
			bad = append(bad, fmt.Sprintf("%q could not be caused", k.Kind))
		}
	}
	if len(r.Kinds) < len(allKinds) {
		bad = append(bad, fmt.Sprintf("only %d of %d fault kinds ran", len(r.Kinds), len(allKinds)))
	}
	if r.Unexcused > tolerate {
		bad = append(bad, fmt.Sprintf("%d connection(s) failed while a ready replica existed: %s", r.Unexcused, firstUnexcused(r.Failures, 3)))
	}
	return strings.Join(bad, "; ")
}

func firstUnexcused(fs []Failure, n int) string {
	var out []string
	for _, f := range fs {
		if f.Fault == "" && !f.NoReplica && len(out) < n {
			out = append(out, fmt.Sprintf("%s %s at %s: %s", f.Client, f.Target, f.Start.UTC().Format("15:04:05.000"), f.Err))
		}
	}
	return strings.Join(out, "; ")
}

// row is one line of the report's table: a measured figure, its goal
// (empty: reported), and whether it met it.
type row struct {
	what, value, goal string
	ok                *bool
}

func yes(b bool) *bool { return &b }

func (r *Results) rows() []row {
	var rows []row
	rows = append(rows, row{"connections that failed while a ready replica existed", fmt.Sprint(r.Unexcused), "0", yes(r.Unexcused == 0)})
	rows = append(rows, row{"connections that failed inside a fault's window (by kind below)", fmt.Sprint(r.InsideWins), "", nil})
	rows = append(rows, row{"connections that failed while their target had no ready replica", fmt.Sprint(r.NoReplica), "", nil})
	notRec := 0
	for _, k := range r.Kinds {
		notRec += k.NotRecovered
	}
	rows = append(rows, row{"faults after which some name did not answer again within " + recoverWithin.String(), fmt.Sprint(notRec), "0", yes(notRec == 0)})
	rows = append(rows, row{fmt.Sprintf("address changes of the %d names whose Service existed throughout", r.StableNames), fmt.Sprint(len(r.AddressChanges)), "0", yes(len(r.AddressChanges) == 0)})
	staleKill := 0
	for _, n := range r.StaleAfterKill {
		staleKill += n
	}
	rows = append(rows, row{fmt.Sprintf("stale hosts names after the %d kill -9 + restarts and while running at the end", len(r.StaleAfterKill)), fmt.Sprint(staleKill), "0", yes(staleKill == 0)})
	rows = append(rows, row{"kubefwd lines left in the hosts file after it stopped", fmt.Sprint(r.StaleAtEnd), "0", yes(r.StaleAtEnd == 0)})
	rows = append(rows, row{"hosts file outside kubefwd's block, byte for byte the user's and the other program's", map[bool]string{true: "identical", false: "differs"}[r.HostsUserBytesIntact && len(r.HostsFindings) == 0], "identical", yes(r.HostsUserBytesIntact && len(r.HostsFindings) == 0)})
	rows = append(rows, row{"seconds from SIGINT to kubefwd's exit at the end", fmt.Sprintf("%.2f", r.StopSeconds), "clean exit", yes(r.StopError == "")})
	for _, g := range r.Growth {
		goal, ok := "≤ 1.10×", yes(g.Ratio() <= 1.10)
		if !g.judged() {
			goal, ok = "", nil
		}
		rows = append(rows, row{fmt.Sprintf("%s at rest: median after minute 6 / median in minute 6 (%.0f → %.0f; highest %.0f; %d samples)", g.Resource, g.Baseline, g.Later, g.Max, g.Samples),
			fmt.Sprintf("%.2f×", g.Ratio()), goal, ok})
	}
	if len(r.Growth) == 0 {
		rows = append(rows, row{"goroutines, open files and RSS after minute 5", "no samples at rest after minute 5", "≤ 1.10×", yes(r.Mode == "quick")})
	}
	if m := r.minutes(); m > 0 {
		rows = append(rows, row{"kubefwd log lines per minute at INFO (WARN, ERROR)", fmt.Sprintf("%.1f (%.1f, %.1f)", float64(r.LogLines["INFO"])/m, float64(r.LogLines["WARN"])/m, float64(r.LogLines["ERROR"])/m), "", nil})
	}
	return rows
}

// Markdown is the report: what ran, the goals, each fault kind, and the
// failures that were not excused.
func Markdown(r *Results) string {
	var b strings.Builder
	b.WriteString("# Reliability\n\n")
	b.WriteString("Measured by `make soak` (`go run ./soak`) on the devcluster: kubefwd forwards " +
		"three namespaces of Services with two replicas each and a headless StatefulSet, on a private hosts file " +
		"and a state file, while clients never stop (short requests on new connections to every name in turn, " +
		"two throttled 32 MiB downloads, three keep-alive connections echoing a request every 0.5 s) and faults " +
		"come one after the other in an order drawn from the seed. A failed connection is excused when a fault " +
		"that may break it was running (or its names had not answered again yet), or when its Service had no " +
		"ready replica (a ready endpoint in its EndpointSlices: what any client of the Service can reach); every other failure counts against the first goal. Raw numbers are in `soak/results/`.\n\n")
	fmt.Fprintf(&b, "%s run · seed %d (`make soak ARGS=--seed=%d` replays the schedule) · %s UTC · %d cores · %s · faults for %.1f min\n\n",
		r.Mode, r.Seed, r.Seed, r.Started.UTC().Format("2006-01-02 15:04"), r.Cores, r.Go, r.minutes())
	fmt.Fprintf(&b, "%d names; operations completed: %d short requests, %d downloads, %d echoes (%d echo reconnections, each after the server closed an idle keep-alive connection or one broke)\n\n",
		r.Services, r.Completed["short"], r.Completed["download"], r.Completed["echo"], r.EchoReconnects)
	b.WriteString("| measured | value | goal | result |\n|---|--:|---|---|\n")
	for _, row := range r.rows() {
		res := "reported"
		if row.ok != nil {
			res = map[bool]string{true: "pass", false: "**fail**"}[*row.ok]
		}
		goal := row.goal
		if goal == "" {
			goal = "reported"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.what, row.value, goal, res)
	}
	b.WriteString("\n## Faults\n\nRecovery is from the fault's end (the apiserver serving again, SIGCONT sent, the Service edited back, …) " +
		"to every name it could have broken answering a new connection again; a fault that breaks nothing is measured on every name.\n\n")
	b.WriteString("| fault | times | not caused | names back, p50 s | max s | not back | failures excused by it |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %.2f | %d | %d |\n", k.Kind, k.Count, k.NotCaused, k.RecoverP50, k.RecoverMax, k.NotRecovered, k.FailuresInside)
	}
	if r.Unexcused > 0 {
		b.WriteString("\n## Failures while a ready replica existed\n\n")
		n := 0
		for _, f := range r.Failures {
			if f.Fault != "" || f.NoReplica {
				continue
			}
			if n++; n > 20 {
				fmt.Fprintf(&b, "- … and %d more in the results file\n", r.Unexcused-20)
				break
			}
			during := ""
			if f.During != "" {
				during = " (while: " + f.During + ")"
			}
			fmt.Fprintf(&b, "- %s %s %s%s: %s\n", f.Start.UTC().Format("15:04:05.000"), f.Client, f.Target, during, f.Err)
		}
	}
	var notes []string
	for _, f := range r.Faults {
		if f.Err != "" {
			notes = append(notes, fmt.Sprintf("%s (%s) could not be caused or undone: %s", f.Kind, f.Target, f.Err))
		}
	}
	notes = append(notes, r.AddressChanges...)
	notes = append(notes, r.HostsFindings...)
	if r.StopError != "" {
		notes = append(notes, r.StopError)
	}
	if len(notes) > 0 {
		b.WriteString("\n## Findings\n\n")
		for _, n := range slices.Compact(notes) {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}
