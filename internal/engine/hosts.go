package engine

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/hosts"
)

// markHostsDirty notes that the hosts entries changed; settle publishes
// them once the current burst of changes is processed.
func (e *Engine) markHostsDirty() { e.hostsChanged = true }

// publishHosts hands the current entries to the hosts writer.
func (e *Engine) publishHosts() {
	entries, refused := e.hostsEntries()
	e.mu.Lock()
	e.entries, e.refused = entries, refused
	e.mu.Unlock()
	select {
	case e.hostsDirty <- struct{}{}:
	default:
	}
}

// hostsEntries lists what the hosts file should hold, and the names left
// out because no hosts file may carry them.
func (e *Engine) hostsEntries() ([]hosts.Entry, []hosts.Skipped) {
	keys := make([]catalog.Key, 0, len(e.forwards))
	for k := range e.forwards {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b catalog.Key) int {
		switch {
		case a.String() < b.String():
			return -1
		case a.String() > b.String():
			return 1
		}
		return 0
	})
	var out []hosts.Entry
	var refused []hosts.Skipped
	add := func(addr netip.Addr, names []string, skipped []hosts.Skipped) {
		if len(names) > 0 {
			out = append(out, hosts.Entry{Addr: addr, Names: names})
		}
		refused = append(refused, skipped...)
	}
	for _, k := range keys {
		f := e.forwards[k]
		add(f.addr, f.names, f.refused)
		pods := make([]string, 0, len(f.pods))
		for name := range f.pods {
			pods = append(pods, name)
		}
		slices.Sort(pods)
		for _, name := range pods {
			add(f.pods[name].addr, f.pods[name].names, f.pods[name].refused)
		}
	}
	return out, refused
}

// writeHosts applies the desired entries, batching bursts of changes.
func (e *Engine) writeHosts(ctx context.Context) {
	var reportedSkips []hosts.Skipped
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.hostsDirty:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.opts.HostsDelay):
		}
		e.mu.Lock()
		entries, refused := e.entries, e.refused
		e.mu.Unlock()
		skipped, err := e.opts.Hosts.Apply(entries)
		if err != nil {
			e.log.Error("cannot update the hosts file", "err", err)
			continue
		}
		skipped = append(slices.Clip(refused), skipped...)
		e.mu.Lock()
		e.hostsSkipped = skipped
		e.mu.Unlock()
		for _, s := range skipped {
			if !slices.Contains(reportedSkips, s) {
				reportedSkips = append(reportedSkips, s)
				e.log.Warn("name not written to the hosts file", "name", s.Name, "reason", s.Reason)
			}
		}
	}
}
