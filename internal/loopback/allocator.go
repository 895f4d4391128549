// Package loopback assigns each forwarded Service (and each pod of a headless
// Service) its own address in 127.0.0.0/8, stable for its whole life and
// across restarts: an assignment, once made, is kept in a small state file
// and reused, and a fresh key starts from an address derived from its hash,
// so even without the file most keys land where they did before.
package loopback

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"time"
)

// ErrExhausted means no address is left in the configured range.
var ErrExhausted = errors.New("no free loopback address left")

// ReclaimAfter is how long an address stays assigned to a key that is no
// longer forwarded, before another key may take it.
const ReclaimAfter = 30 * 24 * time.Hour

// Assignment is one key's address and when it was last in use.
type Assignment struct {
	Addr     netip.Addr `json:"ip"`
	LastUsed time.Time  `json:"lastUsed"`
}

// Allocator hands out addresses. It is pure: the caller loads and saves its
// state (see Store). Not safe for concurrent use.
type Allocator struct {
	first, last uint32
	reserved    map[string]netip.Addr // reservation name → address
	reservedSet map[netip.Addr]bool
	assigned    map[string]Assignment // key → address
	owner       map[netip.Addr]string // address → key
	active      map[string]bool       // keys forwarded right now: never reclaimed
	now         func() time.Time
	changes     uint64 // see Changes
}

// NewAllocator allocates from cfg.Base up to 127.255.255.254, honours
// cfg's reservations, and starts from previous assignments.
func NewAllocator(cfg Config, previous map[string]Assignment, now func() time.Time) *Allocator {
	if now == nil {
		now = time.Now
	}
	base := cfg.Base
	if !base.IsValid() {
		base = DefaultBase
	}
	a := &Allocator{
		first:       u32(base),
		last:        u32(netip.AddrFrom4([4]byte{127, 255, 255, 254})),
		reserved:    map[string]netip.Addr{},
		reservedSet: map[netip.Addr]bool{},
		assigned:    map[string]Assignment{},
		owner:       map[netip.Addr]string{},
		active:      map[string]bool{},
		now:         now,
	}
	for _, r := range cfg.Reservations {
		a.reserved[r.Name] = r.Addr
		a.reservedSet[r.Addr] = true
	}
	for key, as := range previous {
		if !as.Addr.IsValid() || a.reservedSet[as.Addr] || !a.inRange(as.Addr) || !usable(as.Addr) {
			continue // the configuration changed under it
		}
		if _, taken := a.owner[as.Addr]; taken {
			continue
		}
		a.assigned[key] = as
		a.owner[as.Addr] = key
	}
	return a
}

// Get returns the address of key. matchNames are the names a reservation
// may use for this key (its hostnames, "svc.ns", …); the first that is
// reserved wins. Otherwise the key keeps its previous address, or gets a
// new one.
func (a *Allocator) Get(key string, matchNames []string) (netip.Addr, error) {
	for _, n := range matchNames {
		if addr, ok := a.reserved[n]; ok {
			// Reserved addresses are never handed out automatically, so
			// another owner matched the same reservation.
			if other, taken := a.owner[addr]; taken && other != key {
				return netip.Addr{}, fmt.Errorf("reserved address %s (%q) is already used by %s", addr, n, other)
			}
			a.take(key, addr)
			return addr, nil
		}
	}
	if as, ok := a.assigned[key]; ok {
		a.take(key, as.Addr)
		return as.Addr, nil
	}
	addr, err := a.free(key)
	if err != nil {
		return netip.Addr{}, err
	}
	a.take(key, addr)
	return addr, nil
}

// Release says key is no longer forwarded. It keeps its address (it will
// get it back) until ReclaimAfter has passed and the address is needed.
func (a *Allocator) Release(key string) {
	if a.active[key] {
		a.changes++
	}
	delete(a.active, key)
	if as, ok := a.assigned[key]; ok {
		as.LastUsed = a.now()
		a.assigned[key] = as
	}
}

// Changes counts the changes to State that a restart would miss: a key
// assigned or moved, released, or its address reclaimed. A caller saves
// State when this moves, not on every Get of a known key.
func (a *Allocator) Changes() uint64 { return a.changes }

// State is what to persist. Keys in use count as used now.
func (a *Allocator) State() map[string]Assignment {
	out := make(map[string]Assignment, len(a.assigned))
	for k, v := range a.assigned {
		if a.active[k] {
			v.LastUsed = a.now()
		}
		out[k] = v
	}
	return out
}

func (a *Allocator) take(key string, addr netip.Addr) {
	old, ok := a.assigned[key]
	if ok && old.Addr != addr && a.owner[old.Addr] == key {
		delete(a.owner, old.Addr)
	}
	if !ok || old.Addr != addr || !a.active[key] {
		a.changes++
	}
	a.assigned[key] = Assignment{Addr: addr, LastUsed: a.now()}
	a.owner[addr] = key
	a.active[key] = true
}

// free finds an address for key: its hash position first, then onwards.
// Addresses of keys unused for ReclaimAfter are taken back when met.
func (a *Allocator) free(key string) (netip.Addr, error) {
	size := a.last - a.first + 1
	h := fnv.New32a()
	h.Write([]byte(key))
	start := h.Sum32() % size
	for i := uint32(0); i < size; i++ {
		addr := addrOf(a.first + (start+i)%size)
		if !usable(addr) || a.reservedSet[addr] {
			continue
		}
		other, taken := a.owner[addr]
		if !taken {
			return addr, nil
		}
		if as := a.assigned[other]; !a.active[other] && a.now().Sub(as.LastUsed) > ReclaimAfter {
			delete(a.assigned, other)
			delete(a.owner, addr)
			a.changes++
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w between %s and %s", ErrExhausted, addrOf(a.first), addrOf(a.last))
}

func (a *Allocator) inRange(addr netip.Addr) bool {
	v := u32(addr)
	return addr.Is4() && v >= a.first && v <= a.last
}

// usable skips .0 and .255 final octets, which some tools treat as
// special, and 127.0.0.0/16, where the machine's own services live
// (127.0.0.1, systemd-resolved's 127.0.0.53, Debian's 127.0.1.1): the
// privileged helper never grants it, and a Service must not take it.
func usable(addr netip.Addr) bool {
	b := addr.As4()
	return b[3] != 0 && b[3] != 255 && !systemNet.Contains(addr)
}

var systemNet = netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 0, 0, 0}), 16)

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrOf(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Keys returns the assigned keys, sorted (for tests and status).
func (a *Allocator) Keys() []string {
	keys := make([]string, 0, len(a.assigned))
	for k := range a.assigned {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
