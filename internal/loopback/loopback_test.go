package loopback

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var mustAddr = netip.MustParseAddr

func TestAllocatorStable(t *testing.T) {
	a := NewAllocator(Config{}, nil, nil)
	x, err := a.Get("ctx/ns/web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !x.IsLoopback() || u32(x) < u32(DefaultBase) {
		t.Fatalf("address %s outside the range", x)
	}
	again, _ := a.Get("ctx/ns/web", nil)
	if again != x {
		t.Fatalf("same key, new address: %s then %s", x, again)
	}
	y, _ := a.Get("ctx/ns/api", nil)
	if y == x {
		t.Fatal("two keys share an address")
	}
	// A restart from the saved state gives the same addresses.
	b := NewAllocator(Config{}, a.State(), nil)
	if got, _ := b.Get("ctx/ns/api", nil); got != y {
		t.Errorf("after restart api = %s, want %s", got, y)
	}
	// Even without state, the hash puts a key where it was.
	c := NewAllocator(Config{}, nil, nil)
	if got, _ := c.Get("ctx/ns/web", nil); got != x {
		t.Errorf("without state web = %s, want %s", got, x)
	}
}

func TestAllocatorReservations(t *testing.T) {
	cfg := Config{Base: DefaultBase, Reservations: []Reservation{{Name: "web.ns", Addr: mustAddr("127.1.28.1")}}}
	a := NewAllocator(cfg, nil, nil)
	got, err := a.Get("ctx/ns/web", []string{"web", "web.ns"})
	if err != nil || got != mustAddr("127.1.28.1") {
		t.Fatalf("reserved web = %s, %v", got, err)
	}
	if _, err := a.Get("ctx2/ns/web", []string{"web.ns"}); err == nil {
		t.Fatal("two keys got one reserved address")
	}
	// Nobody else is ever given a reserved address.
	for i := range 2000 {
		addr, err := a.Get(fmt.Sprintf("k%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if addr == mustAddr("127.1.28.1") {
			t.Fatal("a reserved address was handed out")
		}
	}
}

func TestAllocatorExhaustionAndReclaim(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	// Base near the end: 127.255.255.250 … .254 is five addresses.
	a := NewAllocator(Config{Base: mustAddr("127.255.255.250")}, nil, clock)
	for i := range 5 {
		if _, err := a.Get(fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Get("one-more", nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("sixth key: %v, want ErrExhausted", err)
	}
	a.Release("k0")
	if _, err := a.Get("one-more", nil); !errors.Is(err, ErrExhausted) {
		t.Fatal("a just-released address was reclaimed")
	}
	now = now.Add(ReclaimAfter + time.Hour)
	if _, err := a.Get("one-more", nil); err != nil {
		t.Fatalf("after %s the released address should be reclaimed: %v", ReclaimAfter, err)
	}
	if _, err := a.Get("k1", nil); err != nil {
		t.Fatalf("an active key lost its address: %v", err)
	}
}

func TestParseReserve(t *testing.T) {
	for in, want := range map[string]string{
		"api:127.1.28.1":       "",
		"api.ns.ctx:127.9.9.9": "",
		"api":                  "want name:ip",
		":127.1.1.1":           "want name:ip",
		"api:10.0.0.1":         "outside 127.0.0.0/8",
		"api:127.0.0.0":        "cannot be listened on",
		"api:::1":              "not an IPv4 address",
		"api:nope":             "not an IPv4 address",
	} {
		_, err := ParseReserve(in)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseReserve(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestParseFile(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"upstream schema", "baseUnreservedIP: 127.1.27.1\nserviceConfigurations:\n- name: api\n  ip: 127.1.28.1\n", ""},
		{"empty file", "", ""},
		{"unknown key (upstream's wrong docs)", "baseIP: 127.1.27.1\n", `unknown field "baseIP"`},
		{"base outside loopback", "baseUnreservedIP: 10.1.1.1\n", "baseUnreservedIP: 10.1.1.1 is outside"},
		{"entry outside loopback", "serviceConfigurations:\n- name: api\n  ip: 192.168.1.1\n", "serviceConfigurations[0] (api): ip: 192.168.1.1 is outside"},
		{"duplicate address", "serviceConfigurations:\n- {name: a, ip: 127.1.1.1}\n- {name: b, ip: 127.1.1.1}\n", `reserved for both "a" and "b"`},
		{"name twice", "serviceConfigurations:\n- {name: a, ip: 127.1.1.1}\n- {name: a, ip: 127.1.1.2}\n", `"a" is reserved twice`},
		{"missing name", "serviceConfigurations:\n- {ip: 127.1.1.1}\n", "name is empty"},
		{"not yaml", "{{{", "--fwd-conf f.yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile("f.yml", []byte(tc.yaml))
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestMergeCLIOverridesFile(t *testing.T) {
	file := Config{Base: DefaultBase, Reservations: []Reservation{{"api", mustAddr("127.1.1.1")}, {"db", mustAddr("127.1.1.2")}}}
	got, err := Merge(file, []Reservation{{"api", mustAddr("127.1.1.9")}})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAllocator(got, nil, nil)
	if addr, _ := a.Get("x", []string{"api"}); addr != mustAddr("127.1.1.9") {
		t.Errorf("api = %s, want the -r address", addr)
	}
	if _, err := Merge(file, []Reservation{{"web", mustAddr("127.1.1.2")}}); err == nil {
		t.Error("-r reusing a file's address was accepted")
	}
}

func TestStoreRoundTrip(t *testing.T) {
	s := Store{Path: filepath.Join(t.TempDir(), "state", "addresses.json")}
	if st, err := s.Load(); err != nil || len(st) != 0 {
		t.Fatalf("missing file: %v, %v", st, err)
	}
	a := NewAllocator(Config{}, nil, nil)
	want, _ := a.Get("c/n/s", nil)
	if err := s.Save(a.State()); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil || st["c/n/s"].Addr != want {
		t.Fatalf("loaded %v, %v", st, err)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add("baseUnreservedIP: 127.1.27.1\nserviceConfigurations:\n- name: api\n  ip: 127.1.28.1\n")
	f.Add("serviceConfigurations: [{name: a, ip: 127.0.0.0}]")
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := ParseFile("f", []byte(in))
		if err != nil {
			return
		}
		if !cfg.Base.IsLoopback() {
			t.Fatalf("accepted base %s", cfg.Base)
		}
		for _, r := range cfg.Reservations {
			if !r.Addr.IsLoopback() || r.Name == "" {
				t.Fatalf("accepted reservation %+v", r)
			}
		}
	})
}

// 127.0.0.0/16 belongs to the machine's own services: never assigned
// automatically, whatever the base, and a remembered address there is
// given up.
func TestAllocatorAvoidsSystemNet(t *testing.T) {
	previous := map[string]Assignment{"old": {Addr: mustAddr("127.0.1.1"), LastUsed: time.Now()}}
	a := NewAllocator(Config{Base: mustAddr("127.0.0.2")}, previous, time.Now)
	for i := range 2000 {
		addr, err := a.Get(fmt.Sprintf("k%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if b := addr.As4(); b[1] == 0 {
			t.Fatalf("k%d got %s, in 127.0.0.0/16", i, addr)
		}
	}
	if addr, _ := a.Get("old", nil); addr == mustAddr("127.0.1.1") {
		t.Errorf("a remembered address in 127.0.0.0/16 was kept")
	}
}

// Changes moves when a restart would otherwise lose something (a new or
// moved assignment, a release, a reclaim), and not on every Get of a key
// already held, so the engine saves the state only when it must.
func TestAllocatorChanges(t *testing.T) {
	a := NewAllocator(Config{}, nil, nil)
	steps := []struct {
		what string
		do   func()
		want bool // Changes moved
	}{
		{"a new key", func() { a.Get("ctx/ns/web", nil) }, true},
		{"the same key again", func() { a.Get("ctx/ns/web", nil) }, false},
		{"a second key", func() { a.Get("ctx/ns/api", nil) }, true},
		{"a release", func() { a.Release("ctx/ns/api") }, true},
		{"a release of a released key", func() { a.Release("ctx/ns/api") }, false},
		{"a released key taken again", func() { a.Get("ctx/ns/api", nil) }, true},
	}
	for _, s := range steps {
		before := a.Changes()
		s.do()
		if moved := a.Changes() != before; moved != s.want {
			t.Errorf("%s: Changes moved = %v, want %v", s.what, moved, s.want)
		}
	}
}
