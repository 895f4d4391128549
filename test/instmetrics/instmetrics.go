// Package instmetrics reads a running kubefwd instance's metrics over its
// control socket, as the bench and the soak sample them.
package instmetrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kubefwd/kubefwd/internal/control"
)

// Socket is the control socket of this user's instance named instance.
func Socket(instance string) string {
	return filepath.Join(control.Dir(os.Getuid()), instance+".sock")
}

// Gauges reads the metrics served on socket: each gauge's value, summed
// over its labels (kubefwd_tunnels_open has one series per context).
func Gauges(ctx context.Context, socket string) (map[string]float64, error) {
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://kubefwd/v1/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			if g := m.GetGauge(); g != nil {
				out[name] += g.GetValue()
			}
		}
	}
	if _, ok := out["go_goroutines"]; !ok {
		return nil, fmt.Errorf("no go_goroutines in the metrics")
	}
	return out, nil
}
