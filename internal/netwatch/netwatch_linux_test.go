package netwatch_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/netwatch"
	"github.com/kubefwd/kubefwd/test/netns"
)

// On a real netlink socket, in a namespace of the test's own: changes to
// loopback say nothing, nor does a container starting (a veth whose other
// end is in the container's namespace, enslaved to a bridge); a new
// interface, its address and a route are one Change naming it.
func TestWatchNetlink(t *testing.T) {
	ns, container := netns.New(t), netns.New(t)
	// A Docker-like bridge with a container on it, from before.
	ns.IP(t, "link", "add", "br0", "type", "bridge")
	ns.IP(t, "addr", "add", "172.30.0.1/16", "dev", "br0")
	ns.IP(t, "link", "set", "br0", "up")
	ns.IP(t, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(container.PID))
	ns.IP(t, "link", "set", "veth0", "master", "br0", "up")
	time.Sleep(200 * time.Millisecond) // let br0 settle (its carrier, its IPv6 address)
	ctx, cancel := context.WithCancel(t.Context())
	changes, err := netwatch.Watch(ctx, netwatch.Options{NetNS: ns.Path, Quiet: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ns.IP(t, "link", "set", "lo", "up")
	ns.IP(t, "addr", "add", "127.1.27.1/8", "dev", "lo")
	select {
	case c := <-changes:
		t.Fatalf("loopback changes were reported: %v", c)
	case <-time.After(time.Second):
	}
	// Another container starts.
	ns.IP(t, "link", "add", "veth1", "type", "veth", "peer", "name", "eth1", "netns", strconv.Itoa(container.PID))
	// Docker's order: on the bridge first, then up (one `ip link set`
	// with both brings it up first).
	ns.IP(t, "link", "set", "veth1", "master", "br0")
	ns.IP(t, "link", "set", "veth1", "up")
	select {
	case c := <-changes:
		t.Fatalf("a container's veth on a bridge was reported: %v", c)
	case <-time.After(2 * time.Second):
	}
	ns.IP(t, "link", "add", "kfwd0", "type", "veth", "peer", "name", "kfwd1")
	ns.IP(t, "addr", "add", "10.213.0.1/24", "dev", "kfwd0")
	ns.IP(t, "link", "set", "kfwd0", "up")
	ns.IP(t, "route", "add", "10.214.0.0/16", "dev", "kfwd0")
	select {
	case c := <-changes:
		if c.Links == 0 || c.Addresses == 0 || c.Routes == 0 || len(c.Interfaces) == 0 {
			t.Errorf("change = %+v, want links, addresses and routes", c)
		}
		t.Logf("reported: %v", c)
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported for a new interface, address and route")
	}
	cancel()
	select {
	case _, ok := <-changes:
		if ok {
			// A late burst may still be sent; the channel closes after it.
			if _, ok := <-changes; ok {
				t.Error("the channel stayed open after ctx ended")
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel was not closed after ctx ended")
	}
}
