package loopback

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The bookkeeping is the same on every platform; only macOS runs commands.
func TestAliasesBookkeeping(t *testing.T) {
	var calls []string
	a := &Aliases{added: map[netip.Addr]bool{}, run: func(args ...string) error {
		calls = append(calls, strings.Join(args, " "))
		return nil
	}}
	addr := netip.MustParseAddr("127.1.27.5")
	if err := a.Add(addr); err != nil {
		t.Fatal(err)
	}
	if !needAliases {
		if len(calls) != 0 {
			t.Fatalf("commands ran where no aliases are needed: %v", calls)
		}
		return
	}
	a.Add(addr) // twice: one command
	if err := a.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	want := []string{"lo0 alias 127.1.27.5 up", "lo0 -alias 127.1.27.5"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls = %v, want %v", calls, want)
	}
}
