package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
)

// paused is what the user took out of forwarding, live: each Service key
// with the names it had (so that `resume web` finds it by the name it
// was known by). Guarded by statusMu, with the status it shapes.
type pausedSet map[catalog.Key][]string

// Pause stops forwarding the Services named (as RefreshServices names
// them): their listeners close, their names leave the hosts file, and the
// status shows them paused until Resume. It returns the Services paused, or
// an error naming what matched nothing (then nothing is paused).
func (e *Engine) Pause(services []string) ([]string, error) {
	if len(services) == 0 {
		return nil, fmt.Errorf("name the services to pause (see kubefwd status)")
	}
	e.statusMu.Lock()
	keys, unknown := e.matchForwardsLocked(services, false)
	if len(unknown) > 0 {
		e.statusMu.Unlock()
		return nil, fmt.Errorf("no forwarded service matches %s (see kubefwd status)", strings.Join(unknown, ", "))
	}
	for _, key := range keys {
		if _, ok := e.paused[key]; !ok {
			var names []string
			for _, fe := range e.status[key] {
				names = append(names, fe.Names...)
			}
			e.paused[key] = names
		}
	}
	e.statusMu.Unlock()
	return e.requeue(keys), nil
}

// Resume forwards paused Services again: web, web.demo2 (the names they had),
// svc, svc.ns, ns/svc or ctx/ns/svc. It returns the Services resumed, or an
// error naming what matched no paused Service.
func (e *Engine) Resume(services []string) ([]string, error) {
	if len(services) == 0 {
		return nil, fmt.Errorf("name the services to resume (see kubefwd status)")
	}
	e.statusMu.Lock()
	var keys []catalog.Key
	var unknown []string
	for _, want := range services {
		found := false
		for key, names := range e.paused {
			if slices.Contains(names, want) || matches(want, key) {
				found = true
				keys = append(keys, key)
			}
		}
		if !found {
			unknown = append(unknown, want)
		}
	}
	if len(unknown) > 0 {
		e.statusMu.Unlock()
		return nil, fmt.Errorf("no paused service matches %s (see kubefwd status)", strings.Join(unknown, ", "))
	}
	for _, key := range keys {
		delete(e.paused, key)
	}
	e.statusMu.Unlock()
	return e.requeue(keys), nil
}

// requeue has the worker reconcile keys and names them, namespace/service,
// sorted and each once.
func (e *Engine) requeue(keys []catalog.Key) []string {
	done := make([]string, 0, len(keys))
	for _, key := range keys {
		e.queue.Add(key)
		done = append(done, key.Namespace+"/"+key.Name)
	}
	slices.Sort(done)
	return slices.Compact(done)
}

// isPaused is the worker's question.
func (e *Engine) isPaused(key catalog.Key) bool {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	_, ok := e.paused[key]
	return ok
}

// pausedReason is what status says of a paused Service.
func pausedReason(key catalog.Key) string {
	return "by you; kubefwd resume " + key.Namespace + "/" + key.Name + " forwards it again"
}

// matchForwardsLocked finds the forwarded Services services name: a
// hostname kubefwd wrote means that forward; otherwise svc, svc.ns, ns/svc
// or ctx/ns/svc. With all, Services paused or not forwarded match too. It
// returns each key once, and what matched nothing. statusMu held.
func (e *Engine) matchForwardsLocked(services []string, all bool) (keys []catalog.Key, unknown []string) {
	for _, want := range services {
		byHostname := false
		for _, entries := range e.status {
			for _, fe := range entries {
				byHostname = byHostname || slices.Contains(fe.Names, want)
			}
		}
		found := false
		for key, entries := range e.status {
			for _, fe := range entries {
				// Paused and not-forwarded Services are not forwarded:
				// nothing to pause, refresh or read logs from.
				if !all && (fe.State == api.StatePaused || fe.State == api.StateNotForwarded) ||
					byHostname && !slices.Contains(fe.Names, want) || !byHostname && !matches(want, key) {
					continue
				}
				found = true
				if !slices.Contains(keys, key) {
					keys = append(keys, key)
				}
			}
		}
		if !found {
			unknown = append(unknown, want)
		}
	}
	return keys, unknown
}
