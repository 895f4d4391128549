package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
)

// row is one forward as the table shows it.
type row struct {
	key       api.ForwardKey
	fwd       *api.Forward
	name      string // ctx/ns/svc, ns/svc or svc (by what differs)
	ports     string
	state     string
	ready     string // ready pods / pods
	pods      string // the pods connections go to
	conns     int64
	in, out   float64 // bytes per second
	lastErr   string
	lastErrAt time.Time
}

// Sort orders of the table, in the order `s` cycles through them.
const (
	sortName = iota
	sortState
	sortConns
	sortTraffic
	sortErrors
	sortOrders
)

var sortNames = [sortOrders]string{"name", "state", "connections", "traffic", "last error"}

// totals are a forward's byte counters at one status.
type totals struct{ in, out int64 }

func forwardTotals(f *api.Forward) totals {
	var t totals
	for _, p := range f.Ports {
		t.in += p.BytesIn
		t.out += p.BytesOut
	}
	return t
}

// rate is bytes per second between two counters (0 across a reset).
func rate(now, before int64, dt time.Duration) float64 {
	if dt <= 0 || now < before {
		return 0
	}
	return float64(now-before) / dt.Seconds()
}

// shortState is the state as the table's narrow column shows it.
func shortState(s string) string {
	if s == api.StateWaiting {
		return "waiting"
	}
	return s
}

// buildRows makes the table's rows: filtered, sorted, and named as
// briefly as the instance allows (the context only when there are several,
// the namespace only when grouping does not already say it).
func buildRows(st *api.Status, rates map[api.ForwardKey][2]float64, filter string, order int, grouped bool) []row {
	multiCtx := len(st.Contexts) > 1
	filter = strings.ToLower(filter)
	rows := make([]row, 0, len(st.Forwards))
	for i := range st.Forwards {
		f := &st.Forwards[i]
		r := row{key: f.Key(), fwd: f, state: shortState(f.State)}
		switch {
		case multiCtx:
			r.name = f.Context + "/" + f.Namespace + "/" + f.Service
		case grouped:
			r.name = f.Service
		default:
			r.name = f.Namespace + "/" + f.Service
		}
		if f.Pod != "" {
			r.name += " › " + f.Pod
		}
		var ports, pods []string
		for _, p := range f.Ports {
			s := strconv.Itoa(int(p.Port))
			if p.Local != p.Port {
				s += "→" + strconv.Itoa(int(p.Local))
			}
			if p.Protocol == "UDP" {
				s += "/udp"
			}
			if p.Relay != "" {
				s += "*" // through the relay; the detail says why
			}
			ports = append(ports, s)
			r.conns += p.Connections
			for _, ep := range p.Endpoints {
				pod := ep
				if i := strings.LastIndexByte(pod, ':'); i > 0 {
					pod = pod[:i]
				}
				if i := strings.IndexByte(pod, '/'); i >= 0 {
					pod = pod[i+1:]
				}
				if !slices.Contains(pods, pod) {
					pods = append(pods, pod)
				}
			}
			if p.LastErrorAt != nil && p.LastErrorAt.After(r.lastErrAt) {
				r.lastErr, r.lastErrAt = p.LastError, *p.LastErrorAt
			}
		}
		r.ports = strings.Join(ports, ",")
		r.pods = strings.Join(pods, ",")
		ready := 0
		for _, ep := range f.Endpoints {
			if ep.Ready {
				ready++
			}
		}
		if len(f.Endpoints) > 0 {
			r.ready = fmt.Sprintf("%d/%d", ready, len(f.Endpoints))
		} else {
			r.ready = "-"
		}
		if rt, ok := rates[r.key]; ok {
			r.in, r.out = rt[0], rt[1]
		}
		if filter != "" && !matches(f, r, filter) {
			continue
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		byName := api.CompareForwards(*a.fwd, *b.fwd)
		if grouped && a.fwd.Namespace != b.fwd.Namespace {
			return byName // groups stay together whatever the order within
		}
		switch order {
		case sortState:
			return cmp.Or(cmp.Compare(stateRank(a.fwd.State), stateRank(b.fwd.State)), byName)
		case sortConns:
			return cmp.Or(cmp.Compare(b.conns, a.conns), byName)
		case sortTraffic:
			return cmp.Or(cmp.Compare(b.in+b.out, a.in+a.out), byName)
		case sortErrors:
			return cmp.Or(b.lastErrAt.Compare(a.lastErrAt), byName)
		}
		return byName
	})
	return rows
}

// stateRank puts what needs attention first.
func stateRank(s string) int {
	switch s {
	case api.StateNotForwarded, api.StateForbidden, api.StateUnreachable:
		return 0
	case api.StateWaiting:
		return 1
	case api.StatePaused:
		return 2
	}
	return 3
}

func matches(f *api.Forward, r row, filter string) bool {
	fields := append([]string{f.Namespace + "/" + f.Service, f.Context, f.Pod, f.Address, f.State, r.pods}, f.Names...)
	for _, s := range fields {
		if strings.Contains(strings.ToLower(s), filter) {
			return true
		}
	}
	return false
}

// connStrings are ways to reach a forward's ports: host:port for each, and
// a URL when the port's name or number says what speaks there.
func connStrings(f *api.Forward) []string {
	host := f.Address
	if len(f.Names) > 0 {
		host = f.Names[0]
	}
	if host == "" {
		return nil
	}
	var out []string
	for _, p := range f.Ports {
		port := strconv.Itoa(int(p.Local))
		if p.Protocol == "UDP" {
			out = append(out, host+":"+port+" (UDP)")
			continue
		}
		out = append(out, host+":"+port)
		if u := urlFor(p.Name, p.Local, host); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// schemes by well-known port name prefix and number.
var schemes = []struct {
	name   string
	port   int32
	scheme string
}{
	{"https", 443, "https"},
	{"http", 80, "http"},
	{"grpc", 0, ""},
	{"postgres", 5432, "postgresql"},
	{"mysql", 3306, "mysql"},
	{"redis", 6379, "redis"},
	{"mongo", 27017, "mongodb"},
	{"amqp", 5672, "amqp"},
	{"nats", 4222, "nats"},
}

func urlFor(name string, port int32, host string) string {
	name = strings.ToLower(name)
	for _, s := range schemes {
		if (s.name != "" && strings.HasPrefix(name, s.name)) || (name == "" && s.port == port) {
			switch {
			case s.scheme == "":
				return ""
			case (s.scheme == "http" && port == 80) || (s.scheme == "https" && port == 443):
				return s.scheme + "://" + host
			}
			return s.scheme + "://" + host + ":" + strconv.Itoa(int(port))
		}
	}
	if name == "web" || port == 8080 || port == 8000 || port == 3000 {
		return "http://" + host + ":" + strconv.Itoa(int(port))
	}
	return ""
}

// humanRate formats bytes per second briefly ("" for none).
func humanRate(b float64) string {
	if b < 0.5 {
		return ""
	}
	return humanBytes(b) + "/s"
}

func humanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 || b >= 100 {
		return fmt.Sprintf("%.0f %s", b, units[i])
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// ago says how long before now t was, briefly.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
