package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/forward"
)

// sleepCheckEvery is how often the wall clock is compared with the
// monotonic one, and sleepThreshold how far they must drift apart to count
// as a sleep.
const (
	sleepCheckEvery = 5 * time.Second
	sleepThreshold  = 20 * time.Second
)

// slept reports whether the machine was suspended between two readings,
// given how far the wall clock and the monotonic clock moved: the
// monotonic clock stops during suspend on Linux and macOS, the wall clock
// does not.
func slept(wall, mono time.Duration) bool {
	return wall-mono > sleepThreshold
}

// watchSleep drops every tunnel after the machine wakes up: connections
// made before a suspend are usually dead (NAT, VPN, Wi-Fi changed), and a
// dead tunnel would make the first connections wait for stream timeouts.
func (e *Engine) watchSleep(ctx context.Context) {
	tick := time.NewTicker(sleepCheckEvery)
	defer tick.Stop()
	prev := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			wall := now.Round(0).Sub(prev.Round(0)) // Round(0) drops the monotonic reading
			if slept(wall, now.Sub(prev)) {
				e.log.Info("the machine was asleep; reopening tunnels", "gap", wall.Round(time.Second))
				e.Refresh()
			}
			prev = now
		}
	}
}

// Refresh retires every tunnel and re-reads every Service from the caches:
// the next connection to each pod opens a new tunnel, and connections in
// flight finish on the old one (cut after forward.RetireGrace if stuck).
// Listeners, addresses and names stay as they are.
func (e *Engine) Refresh() {
	for _, name := range e.contexts {
		cl := e.clusters[name]
		cl.pool.Retire(nil, forward.RetireGrace)
		for _, k := range cl.catalog.Keys() {
			e.queue.Add(k)
		}
	}
	e.events.emit(api.Event{Type: api.EventRefresh, Message: "all tunnels"})
}

// RefreshServices does what Refresh does for the forwards matching the
// given names only: a hostname kubefwd wrote (`web`, `web.demo2`), else
// `svc` (in every namespace), `svc.ns`, `ns/svc` or `ctx/ns/svc`. It returns the forwards refreshed, or an
// error naming what matched nothing.
func (e *Engine) RefreshServices(services []string) ([]string, error) {
	e.statusMu.Lock()
	keys, unknown := e.matchForwardsLocked(services, true)
	matched := map[catalog.Key][]forward.Pod{}
	for _, key := range keys {
		matched[key] = nil
		for _, fs := range e.status[key] {
			for _, pf := range fs.pfs {
				for _, ep := range pf.eps.List() {
					matched[key] = append(matched[key], ep.Pod)
				}
			}
		}
	}
	e.statusMu.Unlock()
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no forwarded service matches %s (see kubefwd status)", strings.Join(unknown, ", "))
	}
	var done []string
	for key, pods := range matched {
		cl := e.clusters[key.Context]
		cl.pool.Retire(func(p forward.Pod) bool { return slices.Contains(pods, p) }, forward.RetireGrace)
		e.queue.Add(key)
		done = append(done, key.Namespace+"/"+key.Name)
		e.events.emit(api.Event{Type: api.EventRefresh, Context: key.Context, Namespace: key.Namespace, Service: key.Name})
	}
	slices.Sort(done)
	return done, nil
}

func matches(want string, key catalog.Key) bool {
	switch want {
	case key.Name, key.Name + "." + key.Namespace, key.Namespace + "/" + key.Name, key.String():
		return true
	}
	return false
}
