package engine

import (
	"context"
	"time"
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

// Refresh closes every tunnel; the next connection to each pod opens a new
// one. Listeners, addresses and names stay as they are.
func (e *Engine) Refresh() {
	for _, cl := range e.clusters {
		cl.pool.CloseAll()
	}
}
