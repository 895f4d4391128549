package control

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefwd/kubefwd/internal/engine"
)

// collector turns a status snapshot into Prometheus metrics at scrape time,
// so the forwarding path keeps only its atomic counters.
type collector struct {
	engine Engine

	forwards, open, bytes, failed, tunnels, dials, dialFailures *prometheus.Desc
}

func newCollector(e Engine) *collector {
	svc := []string{"context", "namespace", "service", "pod", "port"}
	return &collector{
		engine:       e,
		forwards:     prometheus.NewDesc("kubefwd_forwards", "Forwards by state.", []string{"state"}, nil),
		open:         prometheus.NewDesc("kubefwd_connections_open", "Connections being carried.", svc, nil),
		bytes:        prometheus.NewDesc("kubefwd_bytes_total", "Bytes carried, by direction (in: from pods).", append(svc, "direction"), nil),
		failed:       prometheus.NewDesc("kubefwd_connections_failed_total", "Connections closed without reaching a pod.", svc, nil),
		tunnels:      prometheus.NewDesc("kubefwd_tunnels_open", "Tunnels open or being dialed.", []string{"context"}, nil),
		dials:        prometheus.NewDesc("kubefwd_tunnel_dials_total", "Tunnel dials.", []string{"context"}, nil),
		dialFailures: prometheus.NewDesc("kubefwd_tunnel_dial_failures_total", "Tunnel dials that failed.", []string{"context"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.forwards, c.open, c.bytes, c.failed, c.tunnels, c.dials, c.dialFailures} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.engine.Status()
	states := map[string]int{engine.StateActive: 0, engine.StateWaiting: 0, engine.StateNotForwarded: 0}
	for _, f := range st.Forwards {
		states[f.State]++
		for _, p := range f.Ports {
			labels := []string{f.Context, f.Namespace, f.Service, f.Pod, strconv.Itoa(int(p.Local))}
			ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(p.Connections), labels...)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(p.BytesIn), append(labels, "in")...)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(p.BytesOut), append(labels, "out")...)
			ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(p.Failed), labels...)
		}
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(c.forwards, prometheus.GaugeValue, float64(n), state)
	}
	for _, t := range st.Tunnels {
		ch <- prometheus.MustNewConstMetric(c.tunnels, prometheus.GaugeValue, float64(t.Open), t.Context)
		ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, float64(t.Dials), t.Context)
		ch <- prometheus.MustNewConstMetric(c.dialFailures, prometheus.CounterValue, float64(t.DialFailures), t.Context)
	}
}
