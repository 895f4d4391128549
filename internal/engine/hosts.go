package engine

import (
	"context"
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
	entries := e.hostsEntries()
	e.mu.Lock()
	e.entries = entries
	e.mu.Unlock()
	select {
	case e.hostsDirty <- struct{}{}:
	default:
	}
}

func (e *Engine) hostsEntries() []hosts.Entry {
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
	for _, k := range keys {
		f := e.forwards[k]
		out = append(out, hosts.Entry{Addr: f.addr, Names: f.names})
		pods := make([]string, 0, len(f.pods))
		for name := range f.pods {
			pods = append(pods, name)
		}
		slices.Sort(pods)
		for _, name := range pods {
			out = append(out, hosts.Entry{Addr: f.pods[name].addr, Names: f.pods[name].names})
		}
	}
	return out
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
		entries := e.entries
		e.mu.Unlock()
		skipped, err := e.opts.Hosts.Apply(entries)
		if err != nil {
			e.log.Error("cannot update the hosts file", "err", err)
			continue
		}
		for _, s := range skipped {
			if !slices.Contains(reportedSkips, s) {
				reportedSkips = append(reportedSkips, s)
				e.log.Warn("name not written to the hosts file", "name", s.Name, "reason", s.Reason)
			}
		}
	}
}
