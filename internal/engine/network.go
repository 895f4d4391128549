package engine

import (
	"context"
	"fmt"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/netwatch"
)

// watchNetwork closes idle tunnels when the machine's network changes (Wi-Fi
// to another network, a VPN up or down, a cable pulled): their TCP
// connections to the API server may have died without a word, and the next
// connection would wait on one for the stream timeout. Tunnels carrying
// connections are taken out of use but left to those connections: one that
// survived the change must not be cut by us.
func (e *Engine) watchNetwork(ctx context.Context) {
	changes, err := netwatch.Watch(ctx, e.opts.Network)
	if err != nil {
		e.log.Warn("network changes will not be noticed; tunnels are replaced when found broken", "err", err)
		return
	}
	for change := range changes {
		closed, draining := 0, 0
		for _, name := range e.contexts {
			c, d := e.clusters[name].pool.RetireIdle()
			closed, draining = closed+c, draining+d
		}
		e.log.Info("the network changed; idle tunnels closed, the next connections open new ones",
			"change", change.String(), "closed", closed, "kept", draining)
		e.events.emit(api.Event{Type: api.EventNetworkChanged,
			Message: fmt.Sprintf("%s; idle tunnels closed: %d, kept for their connections: %d", change, closed, draining)})
	}
	if ctx.Err() == nil {
		e.log.Warn("network changes are no longer noticed: the system stopped reporting them")
	}
}
