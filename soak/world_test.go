package main

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadyCounts(t *testing.T) {
	yes, no := true, false
	svc := func(name string, headless bool) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name}}
		if headless {
			s.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return s
	}
	ep := func(ip, pod string, ready *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
		if pod != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
		}
		return e
	}
	slice := func(ns, svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-x",
				Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			Endpoints: eps,
		}
	}
	got := readyCounts(
		[]*corev1.Service{svc("web", false), svc("idle", false), svc("db", true)},
		[]*discoveryv1.EndpointSlice{
			// web: one ready, one not, one unknown (read as ready), and
			// the ready one again in a second slice.
			slice("a", "web", ep("10.0.0.1", "web-1", &yes), ep("10.0.0.2", "web-2", &no), ep("10.0.0.3", "web-3", nil)),
			slice("a", "web", ep("10.0.0.1", "web-1", &yes)),
			slice("a", "db", ep("10.0.1.1", "db-0", &yes), ep("10.0.1.2", "db-1", &no)),
			// A slice of a Service the caches do not hold, and one with
			// no address: neither counts.
			slice("a", "gone", ep("10.0.2.1", "gone-1", &yes)),
			slice("a", "idle", discoveryv1.Endpoint{}),
		})
	want := map[string]int{"a/web": 2, "a/idle": 0, "a/db": 1, "a/db/db-0": 1}
	if !maps.Equal(got, want) {
		t.Errorf("readyCounts = %v, want %v", got, want)
	}
}
