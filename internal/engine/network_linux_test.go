package engine_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
	"github.com/kubefwd/kubefwd/test/netns"
)

// A change of the network (here a private namespace's, where the test adds
// an interface, an address and a route; the engine's netlink socket lives
// there) closes idle tunnels at once, so the next connection dials a new
// one instead of trusting one whose TCP connection may have died with the
// old network. A connection carried across the change is not cut, and its
// tunnel is kept for it. Followers get one event for the burst.
func TestNetworkChangeRetiresIdleTunnels(t *testing.T) {
	c := clustertest.Shared(t)
	ns := netns.New(t)
	app(t, c, "netchange", "web", 1)
	app(t, c, "netchange", "api", 1)
	f := startEngine(t, c, fwdOptions{namespaces: []string{"netchange"}, netns: ns.Path, tunnelsOnly: true})
	f.waitName(t, "web")
	apiAddr := f.waitName(t, "api")
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=netchange/web-") {
		t.Fatalf("web: %q, %v", body, err)
	}
	// A client keeping its connection to api open across the change.
	kept, err := net.Dial("tcp", net.JoinHostPort(apiAddr, "80"))
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	keptReader := bufio.NewReader(kept)
	if body, err := keepAliveGet(kept, keptReader); err != nil || !strings.HasPrefix(body, "pod=netchange/api-") {
		t.Fatalf("api: %q, %v", body, err)
	}
	tunnels := func() api.TunnelStats { return f.engine.Status().Tunnels[0] }
	before := tunnels()
	if before.Open != 2 {
		t.Fatalf("before the change: %+v, want 2 tunnels open", before)
	}
	sub := f.engine.Subscribe()
	defer sub.Close()

	ns.IP(t, "link", "add", "kfwd0", "type", "veth", "peer", "name", "kfwd1")
	ns.IP(t, "addr", "add", "10.213.0.1/24", "dev", "kfwd0")
	ns.IP(t, "link", "set", "kfwd0", "up")
	ns.IP(t, "route", "add", "10.214.0.0/16", "dev", "kfwd0")

	var changed []api.Event
	for deadline := time.After(15 * time.Second); len(changed) == 0; {
		select {
		case ev := <-sub.Events():
			if ev.Type == api.EventNetworkChanged {
				changed = append(changed, ev)
			}
		case <-deadline:
			t.Fatalf("no %s event within 15 s of a new interface, address and route (tunnels: %+v)", api.EventNetworkChanged, tunnels())
		}
	}
	t.Logf("event: %s", changed[0].Message)
	if !strings.Contains(changed[0].Message, "kfwd0") || !strings.Contains(changed[0].Message, "idle tunnels closed: 1, kept for their connections: 1") {
		t.Errorf("event message %q: want the interface and what was done", changed[0].Message)
	}
	// The idle one is closed by a goroutine of its own: allow it a moment.
	_ = cluster.Poll(t.Context(), 5*time.Second, func(context.Context) (bool, error) {
		st := tunnels()
		return st.Open == 0 && st.Retiring == 1, nil
	})
	if st := tunnels(); st.Open != 0 || st.Retiring != 1 {
		t.Errorf("after the change: %+v, want none in use and api's retiring under its connection", st)
	}
	// The connection that spanned the change still works.
	if body, err := keepAliveGet(kept, keptReader); err != nil || !strings.HasPrefix(body, "pod=netchange/api-") {
		t.Errorf("the connection kept across the change: %q, %v", body, err)
	}
	// The next connection dials a new tunnel.
	if body, err := f.get(t, "web", 80); err != nil || !strings.HasPrefix(body, "pod=netchange/web-") {
		t.Fatalf("web after the change: %q, %v", body, err)
	}
	if after := tunnels(); after.Dials != before.Dials+1 || after.DialFailures != before.DialFailures {
		t.Errorf("dials: %+v before, %+v after the change and one connection; want one more, no failure", before, after)
	}
	// The burst was one event.
	_ = cluster.Poll(t.Context(), 2*time.Second, func(context.Context) (bool, error) {
		for {
			select {
			case ev := <-sub.Events():
				if ev.Type == api.EventNetworkChanged {
					changed = append(changed, ev)
				}
			default:
				return false, nil
			}
		}
	})
	if len(changed) != 1 {
		t.Errorf("%d %s events for one burst of changes: %+v", len(changed), api.EventNetworkChanged, changed)
	}
}

// keepAliveGet makes one HTTP/1.1 request on conn and leaves it open.
func keepAliveGet(conn net.Conn, r *bufio.Reader) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
