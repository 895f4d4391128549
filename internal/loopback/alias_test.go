package loopback

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func recordingAliases(need bool, fail map[string]bool) (*Aliases, *[]string) {
	var calls []string
	a := &Aliases{need: need, added: map[netip.Addr]bool{}, run: func(args ...string) error {
		call := strings.Join(args, " ")
		calls = append(calls, call)
		if fail[call] {
			return errors.New("ifconfig failed")
		}
		return nil
	}}
	return a, &calls
}

// macOS's bookkeeping, run on every OS through the need field: each address
// aliased once, 127.0.0.1 never, a failed alias not remembered, and every
// alias taken back at the end.
func TestAliasesBookkeeping(t *testing.T) {
	a, calls := recordingAliases(true, map[string]bool{"lo0 alias 127.1.27.9 up": true})
	five, nine := netip.MustParseAddr("127.1.27.5"), netip.MustParseAddr("127.1.27.9")
	if err := a.Add(five); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(five); err != nil { // twice: one command
		t.Fatal(err)
	}
	if err := a.Add(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(nine); err == nil {
		t.Error("a failed ifconfig was not reported")
	}
	if err := a.Remove(netip.MustParseAddr("127.1.27.77")); err != nil { // never added: nothing to do
		t.Fatal(err)
	}
	if err := a.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	want := []string{"lo0 alias 127.1.27.5 up", "lo0 alias 127.1.27.9 up", "lo0 -alias 127.1.27.5"}
	if !slices.Equal(*calls, want) {
		t.Fatalf("calls = %q, want %q", *calls, want)
	}
	if err := a.RemoveAll(); err != nil || len(*calls) != len(want) {
		t.Fatalf("a second RemoveAll ran %q (%v)", (*calls)[len(want):], err)
	}
}

// Where 127.0.0.0/8 is routed to loopback already (Linux, Windows), no
// command runs.
func TestAliasesNotNeeded(t *testing.T) {
	a, calls := recordingAliases(false, nil)
	if err := a.Add(netip.MustParseAddr("127.1.27.5")); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 0 {
		t.Fatalf("commands ran where no aliases are needed: %q", *calls)
	}
}
