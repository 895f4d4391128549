package control

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubefwd/kubefwd/internal/api"
)

// collector turns a status snapshot into Prometheus metrics at scrape time,
// so the forwarding path keeps only its atomic counters.
type collector struct {
	engine Engine

	forwards, open, bytes, failed, streamErrors, retried, tunnels, dials, dialFailures, reconnects, direct, requests, watchErrors, relayReady *prometheus.Desc
}

func newCollector(e Engine) *collector {
	svc := []string{"context", "namespace", "service", "pod", "port"}
	return &collector{
		engine:       e,
		forwards:     prometheus.NewDesc("kubefwd_forwards", "Forwards by state.", []string{"state"}, nil),
		open:         prometheus.NewDesc("kubefwd_connections_open", "Connections being carried.", svc, nil),
		bytes:        prometheus.NewDesc("kubefwd_bytes_total", "Bytes carried, by direction (in: from pods).", append(svc, "direction"), nil),
		failed:       prometheus.NewDesc("kubefwd_connections_failed_total", "Connections closed without reaching a pod.", svc, nil),
		streamErrors: prometheus.NewDesc("kubefwd_stream_errors_total", "Streams to pods that failed to open or ended in an error.", svc, nil),
		retried:      prometheus.NewDesc("kubefwd_connections_retried_total", "Tries on another endpoint after one failed before answering (failovers clients never saw).", svc, nil),
		reconnects:   prometheus.NewDesc("kubefwd_tunnel_reconnects_total", "Broken tunnels replaced by a new dial.", []string{"context"}, nil),
		direct:       prometheus.NewDesc("kubefwd_direct_connections_total", "Connections opened on a WebSocket of their own instead of a tunnel (a pod's first in a while).", []string{"context"}, nil),
		requests:     prometheus.NewDesc("kubefwd_api_requests_total", "Requests to the API server; verb=watch counts watches started, restarts included.", []string{"context", "verb", "resource"}, nil),
		watchErrors:  prometheus.NewDesc("kubefwd_api_watch_errors_total", "Lists and watches of the API server that failed and were retried.", []string{"context"}, nil),
		tunnels:      prometheus.NewDesc("kubefwd_tunnels_open", "Tunnels open or being dialed.", []string{"context"}, nil),
		dials:        prometheus.NewDesc("kubefwd_tunnel_dials_total", "Tunnel dials.", []string{"context"}, nil),
		dialFailures: prometheus.NewDesc("kubefwd_tunnel_dial_failures_total", "Tunnel dials that failed.", []string{"context"}, nil),
		relayReady:   prometheus.NewDesc("kubefwd_relay_ready", "1 when the context's relay pod (svc --relay) carries connections, 0 while it starts or is refused.", []string{"context", "namespace"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.forwards, c.open, c.bytes, c.failed, c.streamErrors, c.retried, c.tunnels, c.dials, c.dialFailures, c.reconnects, c.direct, c.requests, c.watchErrors, c.relayReady} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.engine.Status()
	states := map[string]int{api.StateActive: 0, api.StateWaiting: 0, api.StateNotForwarded: 0, api.StatePaused: 0,
		api.StateUnreachable: 0, api.StateForbidden: 0}
	for _, f := range st.Forwards {
		states[f.State]++
		for _, p := range f.Ports {
			port := strconv.Itoa(int(p.Local))
			if p.Protocol == "UDP" {
				port += "/udp" // a TCP and a UDP port of one number are two series
			}
			labels := []string{f.Context, f.Namespace, f.Service, f.Pod, port}
			ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(p.Connections), labels...)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(p.BytesIn), append(labels, "in")...)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(p.BytesOut), append(labels, "out")...)
			ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(p.Failed), labels...)
			ch <- prometheus.MustNewConstMetric(c.streamErrors, prometheus.CounterValue, float64(p.StreamErrors), labels...)
			ch <- prometheus.MustNewConstMetric(c.retried, prometheus.CounterValue, float64(p.Retried), labels...)
		}
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(c.forwards, prometheus.GaugeValue, float64(n), state)
	}
	for _, t := range st.Tunnels {
		ch <- prometheus.MustNewConstMetric(c.tunnels, prometheus.GaugeValue, float64(t.Open), t.Context)
		ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, float64(t.Dials), t.Context)
		ch <- prometheus.MustNewConstMetric(c.dialFailures, prometheus.CounterValue, float64(t.DialFailures), t.Context)
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(t.Reconnects), t.Context)
		ch <- prometheus.MustNewConstMetric(c.direct, prometheus.CounterValue, float64(t.Direct), t.Context)
	}
	for _, a := range st.API {
		for _, r := range a.Requests {
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(r.Count), a.Context, r.Verb, r.Resource)
		}
		ch <- prometheus.MustNewConstMetric(c.watchErrors, prometheus.CounterValue, float64(a.WatchErrors), a.Context)
	}
	for _, r := range st.Relays {
		ready := 0.0
		if r.Ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(c.relayReady, prometheus.GaugeValue, ready, r.Context, r.Namespace)
	}
}
