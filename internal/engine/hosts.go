package engine

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
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

// Retrying a hosts write that failed: soon at first (a lock held a moment,
// a file being replaced), then less often while it keeps failing.
const (
	hostsRetryMin = time.Second
	hostsRetryMax = 30 * time.Second
)

// writeHosts applies the desired entries, batching bursts of changes. It
// is level-based: a write that fails is tried again, backing off, until one
// succeeds, with or without a further change.
func (e *Engine) writeHosts(ctx context.Context) {
	var reportedSkips []hosts.Skipped
	failing := "" // the last error logged: each distinct one once
	retry := hostsRetryMin
	retryTimer := time.NewTimer(0)
	retryTimer.Stop()
	defer retryTimer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.hostsDirty:
			if !waitFor(ctx, e.opts.HostsDelay) {
				return
			}
		case <-retryTimer.C:
		}
		e.mu.Lock()
		entries, refused := e.entries, e.refused
		e.mu.Unlock()
		skipped, err := e.opts.Hosts.Apply(entries)
		if err != nil {
			if msg := err.Error(); msg != failing {
				failing = msg
				e.log.Error("cannot update the hosts file; retrying", "err", err)
				e.events.emit(api.Event{Type: api.EventHostsError, Message: msg})
			}
			e.mu.Lock()
			e.hostsErr = failing
			e.mu.Unlock()
			retryTimer.Reset(retry)
			retry = min(2*retry, hostsRetryMax)
			continue
		}
		if failing != "" {
			e.log.Info("hosts file updated again", "entries", len(entries))
			failing = ""
		}
		retryTimer.Stop()
		retry = hostsRetryMin
		skipped = append(slices.Clip(refused), skipped...)
		e.mu.Lock()
		e.hostsSkipped = skipped
		e.hostsErr = ""
		e.mu.Unlock()
		for _, s := range skipped {
			if !slices.Contains(reportedSkips, s) {
				reportedSkips = append(reportedSkips, s)
				e.log.Warn("name not written to the hosts file", "name", s.Name, "reason", s.Reason)
			}
		}
	}
}
