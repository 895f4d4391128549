package forward

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
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

// Only a connection's first pick turns the wheel: with a retry turning it
// too, a dead first endpoint would come first for every connection.
func TestEndpointsRetriesDoNotTurnTheWheel(t *testing.T) {
	e := NewEndpoints(false)
	e.Set([]Endpoint{ep("a", 1), ep("b", 1)})
	var got []string
	for range 4 { // a connection: first pick, and a retry elsewhere when it was a
		first := picks(t, e, 1)[0]
		got = append(got, first)
		if first == "a" {
			got = append(got, "retry:"+picks(t, e, 1, ep("a", 1))[0])
		}
	}
	if want := "a retry:b b a retry:b b"; strings.Join(got, " ") != want {
		t.Errorf("picks %v, want %s", got, want)
	}
}

// An endpoint reported failed is tried after the others for FailCoolOff,
// then in its turn again; pinned, the next one stands in meanwhile; an
// endpoint that leaves the set and comes back starts clean.
func TestEndpointsFailedTriedLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := NewEndpoints(false)
		e.Set([]Endpoint{ep("a", 1), ep("b", 1), ep("c", 1)})
		e.Failed(ep("a", 1))
		if got := strings.Join(picks(t, e, 6), " "); strings.Contains(got, "a") {
			t.Errorf("picks %s: a failed just now", got)
		}
		if got := picks(t, e, 1, ep("b", 1), ep("c", 1)); got[0] != "a" {
			t.Errorf("with the others tried, picked %s; a failing endpoint is still a last resort", got[0])
		}
		time.Sleep(FailCoolOff)
		if got := strings.Join(picks(t, e, 3), " "); !strings.Contains(got, "a") {
			t.Errorf("picks %s: a's cool-off is over", got)
		}

		pinned := NewEndpoints(true)
		pinned.Set([]Endpoint{ep("a", 1), ep("b", 1)})
		pinned.Failed(ep("a", 1))
		if got := strings.Join(picks(t, pinned, 2), " "); got != "b b" {
			t.Errorf("pinned picks %s after a failed, want b b", got)
		}
		time.Sleep(FailCoolOff)
		if got := picks(t, pinned, 1); got[0] != "a" {
			t.Errorf("pinned picked %s after the cool-off, want a", got[0])
		}

		e.Failed(ep("b", 1))
		e.Set([]Endpoint{ep("a", 1), ep("c", 1)})
		e.Set([]Endpoint{ep("a", 1), ep("b", 1), ep("c", 1)})
		if got := strings.Join(picks(t, e, 3), " "); !strings.Contains(got, "b") {
			t.Errorf("picks %s: b came back as a new endpoint", got)
		}
		e.Failed(ep("z", 1)) // not in the set: nothing to remember
		if _, ok := e.failing[ep("z", 1)]; ok {
			t.Errorf("failing %v", e.failing)
		}
	})
}
