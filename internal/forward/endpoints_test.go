package forward

import (
	"context"
	"errors"
	"testing"
	"time"
)

func ep(pod string, port int32) Endpoint {
	return Endpoint{Pod: Pod{Namespace: "ns", Name: pod}, Port: port}
}

func picks(t *testing.T, e *Endpoints, n int, tried ...Endpoint) []string {
	t.Helper()
	var out []string
	for range n {
		got, err := e.Pick(t.Context(), tried)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got.Pod.Name)
	}
	return out
}

func TestEndpointsPick(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pin   bool
		set   []Endpoint
		tried []Endpoint
		want  []string
	}{
		{name: "round robin in name order", set: []Endpoint{ep("b", 1), ep("a", 1), ep("c", 1)}, want: []string{"a", "b", "c", "a"}},
		{name: "duplicates collapse", set: []Endpoint{ep("a", 1), ep("a", 1), ep("b", 1)}, want: []string{"a", "b", "a"}},
		{name: "pinned to first", pin: true, set: []Endpoint{ep("b", 1), ep("a", 1)}, want: []string{"a", "a", "a"}},
		{name: "pinned fails over", pin: true, set: []Endpoint{ep("b", 1), ep("a", 1)}, tried: []Endpoint{ep("a", 1)}, want: []string{"b", "b"}},
		{name: "skips tried", set: []Endpoint{ep("a", 1), ep("b", 1)}, tried: []Endpoint{ep("a", 1)}, want: []string{"b", "b", "b"}},
		{name: "all tried: still picks", set: []Endpoint{ep("a", 1)}, tried: []Endpoint{ep("a", 1)}, want: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEndpoints(tc.pin)
			e.Set(tc.set)
			got := picks(t, e, len(tc.want), tc.tried...)
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("picks = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestEndpointsWaitForSet(t *testing.T) {
	e := NewEndpoints(false)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.Pick(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pick on an empty set = %v, want a deadline error", err)
	}

	got := make(chan Endpoint, 1)
	go func() {
		p, err := e.Pick(t.Context(), nil)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	e.Set(nil) // still empty: keep waiting
	e.Set([]Endpoint{ep("a", 8080)})
	select {
	case p := <-got:
		if p != ep("a", 8080) {
			t.Fatalf("picked %v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pick did not wake up on Set")
	}
}
