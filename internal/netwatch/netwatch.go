// Package netwatch tells when the machine's network changed: an interface
// came or went, an address or a route was added or removed. A laptop moving
// between Wi-Fi networks, a VPN connecting or a cable pulled leave TCP
// connections to the API server dead without a word; whoever holds such
// connections can drop them at once instead of waiting for timeouts.
//
// Linux listens on a netlink socket, macOS on the routing socket; other
// systems report nothing.
package netwatch

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Defaults for Options.
const (
	DefaultQuiet = time.Second     // a burst ends after this long without a message
	DefaultMost  = 5 * time.Second // a burst that never ends is reported after this long
)

// Options tune Watch; the zero value watches this process's network.
type Options struct {
	// Quiet is how long no message must come for a burst to be over and
	// reported (a Wi-Fi change is dozens of messages). Default DefaultQuiet.
	Quiet time.Duration
	// Most bounds how long a burst is held back while messages keep
	// coming. Default DefaultMost.
	Most time.Duration
	// NetNS, on Linux, is the path of a network namespace to watch instead
	// of our own (/proc/PID/ns/net, /run/netns/NAME): tests change a
	// private namespace, never the machine's. Opening the socket there needs
	// CAP_SYS_ADMIN. Elsewhere it must be empty.
	NetNS string
}

// Change is one burst of network changes, as reported.
type Change struct {
	Links, Addresses, Routes int // messages that mattered, by kind
	// Lost is set when the system dropped messages (our socket overflowed):
	// something changed, what is unknown.
	Lost bool
	// Interfaces are the interfaces involved, by name when a message gave
	// it, else as "#index"; sorted.
	Interfaces []string
}

func (c Change) String() string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{c.Links, "link"}, {c.Addresses, "address"}, {c.Routes, "route"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if c.Lost {
		parts = append(parts, "messages lost")
	}
	s := strings.Join(parts, ", ")
	if s == "" {
		s = "nothing"
	}
	if len(c.Interfaces) > 0 {
		s += " (" + strings.Join(c.Interfaces, ", ") + ")"
	}
	return s
}

// kind is what a message is about.
type kind uint8

const (
	kindLink kind = iota + 1
	kindAddress
	kindRoute
	kindLost // the socket overflowed: messages were dropped
)

// message is what the platform code makes of one system message: the
// facts the filter needs, nothing more.
type message struct {
	kind     kind
	index    int    // the interface's index, 0 if none
	name     string // the interface's name, when the message gives it
	loopback bool   // the interface is a loopback one (lo, lo0)
	// addr is the address added or removed, or the route's destination.
	addr netip.Prefix
	// noChange is a link message that changes nothing about the link's
	// state: wireless scan results and statistics arrive as such, many a
	// minute, on Linux.
	noChange bool
	// cloned is a route the kernel made for itself (the IPv6 route cache,
	// path MTU), not one anybody configured.
	cloned bool
	// bridgePort is a link enslaved to a bridge or bond: the bridge's own
	// messages say whatever matters (a container's veth on docker0).
	bridgePort bool
	// stillDown is a link that is down and was down (or just appeared):
	// it carried nothing before and carries nothing now; its going up is
	// a message of its own.
	stillDown bool
}

// loopbackIndex is the loopback interface's index: Linux gives it 1 in
// every network namespace, and macOS gives lo0 1 as well.
const loopbackIndex = 1

// matters says whether a message can affect connections to a cluster.
// Loopback does not: nothing leaves the machine over it, and kubefwd itself
// changes it (macOS lo0 aliases for its 127.x addresses, which would
// otherwise make every start look like a network change). Nor do
// link-local and multicast addresses and routes, nor links enslaved to a
// bridge or down before and after: a container starting (Docker, kind)
// brings all of those, and nothing that reaches an API server. Link
// messages that change nothing and cloned routes are noise.
func matters(m message) bool {
	switch {
	case m.kind == kindLost:
		return true
	case m.loopback || m.index == loopbackIndex:
		return false
	case m.addr.IsValid() && m.addr.Addr().IsLoopback():
		return false
	case m.addr.IsValid() && m.addr.Bits() > 0 && (m.addr.Addr().IsLinkLocalUnicast() || m.addr.Addr().IsMulticast()):
		// fe80::/64, ff00::/8 and their like come with every interface
		// that appears (each container's veth): no API server is reached
		// through them.
		return false
	case m.kind == kindLink && (m.noChange || m.bridgePort || m.stillDown):
		return false
	case m.kind == kindRoute && m.cloned:
		return false
	}
	return true
}

// burst collects the messages of one burst.
type burst struct {
	c     Change
	names map[string]bool // interfaces known by name
	index map[int]string  // interfaces by index ("" while the name is unknown)
}

func (b *burst) add(m message) {
	switch m.kind {
	case kindLink:
		b.c.Links++
	case kindAddress:
		b.c.Addresses++
	case kindRoute:
		b.c.Routes++
	case kindLost:
		b.c.Lost = true
	}
	if b.names == nil {
		b.names, b.index = map[string]bool{}, map[int]string{}
	}
	switch {
	case m.index > 0 && m.name != "":
		b.index[m.index] = m.name
	case m.index > 0:
		if _, ok := b.index[m.index]; !ok {
			b.index[m.index] = ""
		}
	case m.name != "":
		b.names[m.name] = true
	}
}

func (b *burst) change() Change {
	c := b.c
	names := map[string]bool{}
	for n := range b.names {
		names[n] = true
	}
	// A route names its interface by index only; a link or address message
	// of the same burst usually gives the name.
	for i, n := range b.index {
		if n == "" {
			n = fmt.Sprintf("#%d", i)
		}
		names[n] = true
	}
	for n := range names {
		c.Interfaces = append(c.Interfaces, n)
	}
	slices.Sort(c.Interfaces)
	return c
}

// coalesce turns the messages from in into one Change per burst on out:
// sent once quiet has passed without a message that matters, or most after
// the burst's first one. It returns when ctx ends or in is closed (after
// sending what it holds, if it can).
func coalesce(ctx context.Context, in <-chan message, out chan<- Change, quiet, most time.Duration) {
	var (
		b       *burst
		started time.Time
		timer   = time.NewTimer(time.Hour)
		pending chan<- Change // out while a finished burst waits for its reader
		ready   Change        // that burst's Change
		held    *burst        // and the burst itself
	)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-in:
			if !ok {
				if b != nil && pending == nil {
					ready, pending = b.change(), out
				}
				if pending != nil {
					select {
					case pending <- ready:
					case <-ctx.Done():
					}
				}
				return
			}
			if !matters(m) {
				continue
			}
			if pending != nil {
				select {
				case pending <- ready:
					// A reader waiting at this very moment gets the
					// finished burst; left to the outer select's random
					// choice it could be absorbed instead, again and
					// again, and an endless burst never reported.
					pending, held = nil, nil
				default:
					// The reader has not taken the last burst yet: this
					// one joins it, since what it will do covers both.
					b, held, pending, started = held, nil, nil, time.Now()
				}
			}
			if b == nil {
				b, started = &burst{}, time.Now()
			}
			b.add(m)
			timer.Reset(min(quiet, time.Until(started.Add(most))))
		case <-timer.C:
			if b != nil {
				ready, pending, held, b = b.change(), out, b, nil
			}
		case pending <- ready:
			pending, held = nil, nil
		}
	}
}

// source is the platform's stream of messages.
type source interface {
	// read blocks for the next system messages; it fails once close was
	// called.
	read() ([]message, error)
	close() error
}

// Watch reports the network's changes, one Change per burst, on the
// channel it returns, until ctx ends; then the channel is closed. It is
// also closed early if the system stops answering (the read fails).
func Watch(ctx context.Context, opts Options) (<-chan Change, error) {
	if opts.Quiet <= 0 {
		opts.Quiet = DefaultQuiet
	}
	if opts.Most <= 0 {
		opts.Most = DefaultMost
	}
	src, err := open(opts)
	if err != nil {
		return nil, err
	}
	msgs := make(chan message, 64)
	out := make(chan Change)
	stop := context.AfterFunc(ctx, func() { _ = src.close() }) // ends read
	go func() {
		defer close(msgs)
		for {
			ms, err := src.read()
			if err != nil {
				return
			}
			for _, m := range ms {
				select {
				case msgs <- m:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	go func() {
		defer close(out)
		coalesce(ctx, msgs, out, opts.Quiet, opts.Most)
		if stop() { // ended before ctx: the read failed; release the socket
			_ = src.close()
		}
	}()
	return out, nil
}
