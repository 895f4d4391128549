package api

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	forwards := []Forward{
		{Context: "dev", Namespace: "demo", Service: "web", Names: []string{"web", "web.demo"}},
		{Context: "dev", Namespace: "demo2", Service: "web", Names: []string{"web.demo2"}},
		{Context: "dev", Namespace: "demo", Service: "db", Names: []string{"db"}},
		{Context: "dev", Namespace: "demo", Service: "db", Pod: "db-0", Names: []string{"db-0.db"}},
		{Context: "dev", Namespace: "demo", Service: "paused"},
	}
	for want, hits := range map[string][]int{
		"web":            {0}, // a hostname: that forward alone
		"web.demo2":      {1},
		"demo2/web":      {1},
		"dev/demo/web":   {0},
		"db":             {2}, // the hostname db, not the pod's
		"demo/db":        {2, 3},
		"db-0.db":        {3},
		"paused":         {4}, // no names: by its Service name
		"paused.demo":    {4},
		"nope":           nil,
		"other/demo/web": nil,
	} {
		if got := Match(forwards, want); !slices.Equal(got, hits) {
			t.Errorf("Match(%q) = %v, want %v", want, got, hits)
		}
	}
}

// Applying the diff of two snapshots to the first gives the second, and a
// diff carries only what changed.
func TestDiffApply(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	web := Forward{Context: "dev", Namespace: "demo", Service: "web", State: StateActive,
		Ports: []Port{{Port: 80, Local: 80, BytesIn: 10, Endpoints: []string{"demo/web-1:8080"}}}}
	webMore := web
	webMore.Ports = []Port{{Port: 80, Local: 80, BytesIn: 99, Endpoints: []string{"demo/web-1:8080"}, LastError: "x", LastErrorAt: &at}}
	db := Forward{Context: "dev", Namespace: "demo", Service: "db", State: StateWaiting}
	db0 := Forward{Context: "dev", Namespace: "demo", Service: "db", Pod: "db-0", State: StateActive}
	api := Forward{Context: "dev", Namespace: "a", Service: "api", State: StatePaused}
	sorted := func(fs ...Forward) []Forward { slices.SortFunc(fs, CompareForwards); return fs }
	tests := []struct {
		name       string
		prev, next []Forward
		sent       []ForwardKey
		removed    []ForwardKey
	}{
		{"nothing changed", sorted(web, db), sorted(web, db), nil, nil},
		{"a counter moved", sorted(web, db), sorted(webMore, db), []ForwardKey{web.Key()}, nil},
		{"one came, one went", sorted(web, db), sorted(web, db0, api), []ForwardKey{api.Key(), db0.Key()}, []ForwardKey{db.Key()}},
		{"from nothing", nil, sorted(web, db0), []ForwardKey{db0.Key(), web.Key()}, nil},
		{"to nothing", sorted(web, db0), nil, nil, []ForwardKey{db0.Key(), web.Key()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := Status{Contexts: []string{"dev"}, Forwards: tt.prev}
			next := Status{Contexts: []string{"dev"}, Forwards: tt.next, Tunnels: []TunnelStats{{Context: "dev", Open: 3}}}
			u := Diff(prev, next)
			var sent []ForwardKey
			for _, f := range u.Forwards {
				sent = append(sent, f.Key())
			}
			if u.Reset || !slices.Equal(sent, tt.sent) || !slices.Equal(u.Removed, tt.removed) {
				t.Errorf("diff sent %v removed %v (reset %v), want %v and %v", sent, u.Removed, u.Reset, tt.sent, tt.removed)
			}
			got := prev.Apply(u)
			if !reflect.DeepEqual(got.Forwards, next.Forwards) && (len(got.Forwards) != 0 || len(next.Forwards) != 0) {
				t.Errorf("applied:\n got %+v\nwant %+v", got.Forwards, next.Forwards)
			}
			if len(got.Tunnels) != 1 || got.Tunnels[0].Open != 3 {
				t.Errorf("the small fields were not taken whole: %+v", got.Tunnels)
			}
			if !reflect.DeepEqual(prev.Forwards, tt.prev) {
				t.Error("Apply modified the status it was given")
			}
		})
	}
	// A reset replaces whatever was there.
	stale := Status{Forwards: sorted(web, db, api)}
	if got := stale.Apply(StatusUpdate{Reset: true, Status: Status{Forwards: sorted(db0)}}); len(got.Forwards) != 1 || got.Forwards[0].Key() != db0.Key() {
		t.Errorf("reset gave %+v", got.Forwards)
	}
}

// Random walks over forward sets: every step's diff rebuilds the next set.
func FuzzDiffApply(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, steps []byte) {
		var cur Status
		for i := 0; i+1 < len(steps); i += 2 {
			next := Status{}
			for j := range 8 {
				if steps[i]&(1<<j) != 0 {
					next.Forwards = append(next.Forwards, Forward{Context: "c", Namespace: "n", Service: string(rune('a' + j)),
						Ports: []Port{{Port: 80, BytesIn: int64(steps[i+1] >> (j % 4))}}})
				}
			}
			got := cur.Apply(Diff(cur, next))
			if len(got.Forwards) != len(next.Forwards) || (len(next.Forwards) > 0 && !reflect.DeepEqual(got.Forwards, next.Forwards)) {
				t.Fatalf("step %d: got %+v, want %+v", i/2, got.Forwards, next.Forwards)
			}
			cur = got
		}
	})
}
