package engine

import "context"

// hostsWatcher is a HostsWriter that can tell when someone else changed
// the file.
type hostsWatcher interface {
	Watch(ctx context.Context, changed func()) error
}

// watchHosts writes the entries again whenever the hosts file changes
// under us: another program (a VPN client, a network manager, an editor)
// may have rewritten it without our block. Writing the same entries to a
// file that still has them changes nothing, so our own writes settle.
func (e *Engine) watchHosts(ctx context.Context, w hostsWatcher) {
	err := w.Watch(ctx, func() {
		select {
		case e.hostsDirty <- struct{}{}:
		default:
		}
	})
	if err != nil && ctx.Err() == nil {
		e.log.Warn("the hosts file is not watched; if another program rewrites it, kubefwd's names come back only at the next change", "err", err)
	}
}
