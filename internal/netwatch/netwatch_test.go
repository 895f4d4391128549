package netwatch

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"testing/synctest"
	"time"
)

// What counts as a network change, and what is noise or kubefwd's own doing.
func TestMatters(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		m    message
		want bool
	}{
		{"a Wi-Fi link going down", message{kind: kindLink, index: 3, name: "wlan0"}, true},
		{"an address on Wi-Fi", message{kind: kindAddress, index: 3, addr: p("192.168.1.20/24")}, true},
		{"a default route", message{kind: kindRoute, index: 3, addr: netip.Prefix{}}, true},
		{"a VPN's route", message{kind: kindRoute, index: 7, addr: p("10.0.0.0/8")}, true},
		{"an IPv6 address", message{kind: kindAddress, index: 3, addr: p("2001:db8::5/64")}, true},
		{"lost messages", message{kind: kindLost}, true},
		{"an IPv6 default route", message{kind: kindRoute, index: 3, addr: p("::/0")}, true},
		{"a link-local address of a new veth", message{kind: kindAddress, index: 12, addr: p("fe80::1c2f:3aff:fe4b:1/64")}, false},
		{"its fe80::/64 route", message{kind: kindRoute, index: 12, addr: p("fe80::/64")}, false},
		{"a multicast route", message{kind: kindRoute, index: 12, addr: p("ff00::/8")}, false},
		{"an IPv4 link-local address", message{kind: kindAddress, index: 3, addr: p("169.254.10.2/16")}, false},
		{"lo going up", message{kind: kindLink, index: 1, name: "lo", loopback: true}, false},
		{"a loopback interface other than index 1", message{kind: kindLink, index: 9, name: "lo1", loopback: true}, false},
		{"a route on lo", message{kind: kindRoute, index: 1, addr: p("127.0.0.0/8")}, false},
		{"kubefwd's 127.x alias on macOS lo0", message{kind: kindAddress, index: 1, addr: p("127.1.27.1/8")}, false},
		{"a 127.x address put on another interface", message{kind: kindAddress, index: 4, addr: p("127.1.27.1/32")}, false},
		{"::1", message{kind: kindAddress, index: 1, addr: p("::1/128")}, false},
		{"a container's veth, just made or its peer moved, down", message{kind: kindLink, index: 12, name: "veth1a2b", stillDown: true}, false},
		{"that veth on docker0, up", message{kind: kindLink, index: 12, name: "veth1a2b", bridgePort: true}, false},
		{"a Wi-Fi link going down (not new)", message{kind: kindLink, index: 3, name: "wlan0"}, true},
		{"a wireless scan result", message{kind: kindLink, index: 3, name: "wlan0", noChange: true}, false},
		{"a cloned route (neighbour, path MTU)", message{kind: kindRoute, index: 3, addr: p("192.168.1.1/32"), cloned: true}, false},
	} {
		if got := matters(tc.m); got != tc.want {
			t.Errorf("%s: matters = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A burst of messages is one Change, sent after a quiet second; noise does
// not start one nor keep one open; a burst that never ends is reported
// after Most anyway; a Change the reader has not taken yet absorbs the next.
func TestCoalesce(t *testing.T) {
	wifi := func(k kind) message { return message{kind: k, index: 3, name: "wlan0"} }
	noise := message{kind: kindLink, index: 1, name: "lo", loopback: true}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		in, out := make(chan message), make(chan Change)
		done := make(chan struct{})
		go func() { coalesce(ctx, in, out, time.Second, 5*time.Second); close(done) }()
		expectNone := func(what string) {
			t.Helper()
			synctest.Wait()
			select {
			case c := <-out:
				t.Fatalf("%s: got %v", what, c)
			default:
			}
		}

		// Noise alone: nothing, ever.
		in <- noise
		time.Sleep(10 * time.Second)
		expectNone("after loopback noise")

		// Dozens of messages 100 ms apart: one Change, a second after the last.
		start := time.Now()
		for i := range 30 {
			in <- wifi(kind(i%3 + 1))
			in <- noise
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(800 * time.Millisecond)
		expectNone("before a quiet second")
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		select {
		case c := <-out:
			want := Change{Links: 10, Addresses: 10, Routes: 10, Interfaces: []string{"wlan0"}}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("burst = %+v, want %+v", c, want)
			}
			if took := time.Since(start); took != 3900*time.Millisecond {
				t.Errorf("burst reported after %s, want 3.9s (3s of messages, then a quiet second)", took)
			}
		default:
			t.Fatal("no Change a quiet second after the burst")
		}
		expectNone("after the burst was reported")

		// Messages every 400 ms forever: reported after 5 s regardless.
		// (Not a period that divides 5 s: a message at the very instant
		// the bound falls may go either side of it.)
		start = time.Now()
		got := make(chan Change, 1)
		go func() { got <- <-out }()
		for range 15 {
			in <- wifi(kindRoute)
			time.Sleep(400 * time.Millisecond)
		}
		synctest.Wait()
		select {
		case c := <-got:
			if c.Routes != 13 {
				t.Errorf("the first 5 s of an endless burst: %+v, want 13 routes (0 to 4.8 s)", c)
			}
		default:
			t.Fatalf("an endless burst not reported within %s", time.Since(start))
		}

		// Not taken by the reader: the next burst joins it.
		in <- message{kind: kindAddress, index: 4, name: "eth0"}
		time.Sleep(3 * time.Second)
		in <- message{kind: kindAddress, index: 5}
		in <- message{kind: kindRoute, index: 4}
		time.Sleep(3 * time.Second)
		c := <-out
		want := Change{Routes: 3, Addresses: 2, Interfaces: []string{"#5", "eth0", "wlan0"}}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("two bursts before the reader came: %+v, want %+v", c, want)
		}

		// Closing the input sends what is held, then returns.
		in <- message{kind: kindLost}
		close(in)
		if c := <-out; !c.Lost {
			t.Errorf("after the input closed: %+v, want lost messages", c)
		}
		<-done
	})
}

func TestChangeString(t *testing.T) {
	c := Change{Links: 1, Routes: 12, Lost: true, Interfaces: []string{"#4", "wlan0"}}
	if got, want := c.String(), "1 link, 12 route, messages lost (#4, wlan0)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
