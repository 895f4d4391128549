package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/namespaces"
)

// Namespaces lists what every context forwards, namespaces in order.
func (e *Engine) Namespaces() []api.ContextNamespaces {
	e.nsMu.RLock()
	defer e.nsMu.RUnlock()
	out := make([]api.ContextNamespaces, 0, len(e.contexts))
	for _, name := range e.contexts {
		cl := e.clusters[name]
		states := cl.catalog.Namespaces()
		if !cl.target.AllNamespaces {
			slices.SortStableFunc(states, func(a, b catalog.NamespaceState) int {
				return slices.Index(cl.namespaces, a.Namespace) - slices.Index(cl.namespaces, b.Namespace)
			})
		}
		out = append(out, api.ContextNamespaces{Context: name, All: cl.target.AllNamespaces, Namespaces: states})
	}
	return out
}

// ClusterNamespaces lists the namespaces of every context's cluster, read
// with the instance's credentials (a user who may not list them gets the
// reason, and can still name one).
func (e *Engine) ClusterNamespaces(ctx context.Context) []api.ClusterNamespaces {
	out := make([]api.ClusterNamespaces, 0, len(e.contexts))
	for _, name := range e.contexts {
		cn := api.ClusterNamespaces{Context: name, Namespaces: []string{}}
		list, err := e.clusters[name].target.Client.Namespaces(ctx)
		if err != nil {
			cn.Error = err.Error()
		} else {
			for _, ns := range list.Items {
				cn.Namespaces = append(cn.Namespaces, ns.Name)
			}
			slices.Sort(cn.Namespaces)
		}
		out = append(out, cn)
	}
	return out
}

// ChangeNamespaces sets, adds or removes forwarded namespaces while running:
// new namespaces' Services are forwarded as soon as they are listed,
// removed ones' listeners, addresses and hosts entries go. A namespace
// without a context applies to every context of this instance.
func (e *Engine) ChangeNamespaces(op string, refs []namespaces.Ref) (api.NamespaceChange, error) {
	e.nsMu.Lock()
	var editable []string
	for _, name := range e.contexts {
		if !e.clusters[name].target.AllNamespaces {
			editable = append(editable, name)
		}
	}
	for _, r := range refs {
		if cl := e.clusters[r.Context]; cl != nil && cl.target.AllNamespaces {
			e.nsMu.Unlock()
			return api.NamespaceChange{}, fmt.Errorf("context %q %w", r.Context, api.ErrAllNamespaces)
		}
	}
	if len(editable) == 0 {
		e.nsMu.Unlock()
		return api.NamespaceChange{}, fmt.Errorf("this kubefwd %w", api.ErrAllNamespaces)
	}

	desired := map[string][]string{}
	var notes []string
	switch op {
	case api.NamespacesSet:
		var err error
		if desired, err = namespaces.PerContext(refs, editable); err != nil {
			e.nsMu.Unlock()
			return api.NamespaceChange{}, err
		}
	case api.NamespacesAdd, api.NamespacesRemove:
		perCtx, err := namespaces.PerContext(refs, editable)
		if err != nil {
			e.nsMu.Unlock()
			return api.NamespaceChange{}, err
		}
		for _, name := range editable {
			current := e.clusters[name].namespaces
			next := slices.Clone(current)
			for _, ns := range perCtx[name] {
				has := slices.Contains(current, ns)
				switch {
				case op == api.NamespacesAdd && has:
					notes = append(notes, fmt.Sprintf("namespace %s is already forwarded%s", ns, inContext(name, editable)))
				case op == api.NamespacesAdd:
					next = append(next, ns)
				case !has:
					notes = append(notes, fmt.Sprintf("namespace %s is not forwarded%s; nothing to remove", ns, inContext(name, editable)))
				default:
					next = slices.DeleteFunc(next, func(s string) bool { return s == ns })
				}
			}
			desired[name] = next
		}
	default:
		e.nsMu.Unlock()
		return api.NamespaceChange{}, fmt.Errorf("unknown namespaces operation %q (want set, add or remove)", op)
	}

	var change api.NamespaceChange
	var errs []error
	for _, name := range editable {
		cl := e.clusters[name]
		next := desired[name]
		if slices.Equal(next, cl.namespaces) {
			continue
		}
		added, removed, err := cl.catalog.SetNamespaces(next)
		if err != nil {
			errs = append(errs, fmt.Errorf("context %q: %w", name, err))
			continue
		}
		firstChanged := len(next) == 0 || len(cl.namespaces) == 0 || next[0] != cl.namespaces[0]
		cl.namespaces = slices.Clone(next)
		for _, ns := range added {
			change.Added = append(change.Added, namespaces.Ref{Context: name, Namespace: ns})
		}
		for _, ns := range removed {
			change.Removed = append(change.Removed, namespaces.Ref{Context: name, Namespace: ns})
		}
		if firstChanged {
			// Short names follow the first namespace: rename what stays.
			for _, k := range cl.catalog.Keys() {
				e.queue.Add(k)
			}
		}
		e.log.Info("namespaces changed", "context", name, "namespaces", fmt.Sprint(next), "added", added, "removed", removed)
		e.events.emit(api.Event{Type: api.EventNamespaces, Context: name, Message: strings.Join(next, ",")})
	}
	e.nsMu.Unlock()
	change.Notes = notes
	change.Namespaces = e.Namespaces()
	return change, errors.Join(errs...)
}

func inContext(name string, all []string) string {
	if len(all) == 1 {
		return ""
	}
	return " in context " + name
}
