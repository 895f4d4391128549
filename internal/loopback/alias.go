package loopback

import (
	"net/netip"
	"sync"
)

// Aliases makes loopback addresses usable for listeners. Linux and Windows
// route all of 127.0.0.0/8 to the loopback interface already; macOS answers
// only 127.0.0.1 until each address is added to lo0 (see alias_darwin.go).
type Aliases struct {
	need  bool // the platform needs aliases (a field, so tests run macOS's bookkeeping anywhere)
	mu    sync.Mutex
	added map[netip.Addr]bool // guarded by mu
	run   func(args ...string) error
}

// NewAliases returns the platform's alias manager.
func NewAliases() *Aliases {
	return &Aliases{need: needAliases, added: map[netip.Addr]bool{}, run: runIfconfig}
}

// Add makes addr usable; adding it twice is fine.
func (a *Aliases) Add(addr netip.Addr) error {
	if !a.need || addr == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.added[addr] {
		return nil
	}
	if err := a.run("lo0", "alias", addr.String(), "up"); err != nil {
		return err
	}
	a.added[addr] = true
	return nil
}

// Remove takes back an address added by Add.
func (a *Aliases) Remove(addr netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.added[addr] {
		return nil
	}
	delete(a.added, addr)
	return a.run("lo0", "-alias", addr.String())
}

// RemoveAll takes back every address added (at shutdown).
func (a *Aliases) RemoveAll() error {
	a.mu.Lock()
	addrs := make([]netip.Addr, 0, len(a.added))
	for addr := range a.added {
		addrs = append(addrs, addr)
	}
	a.mu.Unlock()
	var first error
	for _, addr := range addrs {
		if err := a.Remove(addr); err != nil && first == nil {
			first = err
		}
	}
	return first
}
