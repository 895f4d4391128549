package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
)

// readResources are what kubefwd reads; other resources' requests come from
// the cluster's own components (leases, nodes, …) and are left out.
var readResources = []string{"services", "endpointslices", "namespaces", "pods"}

// requestCounts are apiserver_request_total sums by verb, per resource.
type requestCounts struct {
	list, watch, get map[string]int
}

func (r requestCounts) minus(o requestCounts) requestCounts {
	d := requestCounts{list: map[string]int{}, watch: map[string]int{}, get: map[string]int{}}
	for _, res := range readResources {
		d.list[res] = r.list[res] - o.list[res]
		d.watch[res] = r.watch[res] - o.watch[res]
		d.get[res] = r.get[res] - o.get[res]
	}
	return d
}

func (r requestCounts) total() int {
	n := 0
	for _, res := range readResources {
		n += r.list[res] + r.watch[res] + r.get[res]
	}
	return n
}

func (r requestCounts) String() string {
	var parts []string
	for _, res := range readResources {
		if l, w, g := r.list[res], r.watch[res], r.get[res]; l+w+g > 0 {
			parts = append(parts, fmt.Sprintf("%s list %d, watch %d, get %d", res, l, w, g))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// apiserverRequests reads the apiserver's request counters.
func apiserverRequests(ctx context.Context, c *cluster.Cluster) (requestCounts, error) {
	raw, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return requestCounts{}, fmt.Errorf("apiserver /metrics: %w", err)
	}
	return parseRequests(raw)
}

func parseRequests(raw []byte) (requestCounts, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return requestCounts{}, fmt.Errorf("apiserver /metrics: %w", err)
	}
	r := requestCounts{list: map[string]int{}, watch: map[string]int{}, get: map[string]int{}}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["subresource"] != "" || !slices.Contains(readResources, labels["resource"]) {
			continue
		}
		n := int(m.GetCounter().GetValue())
		switch labels["verb"] {
		case "LIST":
			r.list[labels["resource"]] += n
		case "WATCH":
			r.watch[labels["resource"]] += n
		case "GET":
			r.get[labels["resource"]] += n
		}
	}
	return r, nil
}
