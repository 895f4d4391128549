package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/namespaces"
)

// ContextNamespaces is what one context forwards.
type ContextNamespaces struct {
	Context string `json:"context"`
	// All is set under -A: every namespace is forwarded and the list
	// cannot be changed.
	All        bool                     `json:"all,omitempty"`
	Namespaces []catalog.NamespaceState `json:"namespaces"`
}

// NamespaceChange is the outcome of changing the namespaces.
type NamespaceChange struct {
	Added   []namespaces.Ref `json:"added"`
	Removed []namespaces.Ref `json:"removed"`
	// Notes explain requests that changed nothing (adding a namespace
	// already forwarded, removing one that is not).
	Notes      []string            `json:"notes,omitempty"`
	Namespaces []ContextNamespaces `json:"namespaces"`
}

// Namespace operations.
const (
	NamespacesSet    = "set"
	NamespacesAdd    = "add"
	NamespacesRemove = "remove"
)

// ErrAllNamespaces is returned for changes to a context forwarded with -A.
var ErrAllNamespaces = errors.New("forwards all namespaces (-A); its namespaces cannot be changed")

// Namespaces lists what every context forwards, namespaces in order.
func (e *Engine) Namespaces() []ContextNamespaces {
	e.nsMu.RLock()
	defer e.nsMu.RUnlock()
	out := make([]ContextNamespaces, 0, len(e.contexts))
	for _, name := range e.contexts {
		cl := e.clusters[name]
		states := cl.catalog.Namespaces()
		if !cl.target.AllNamespaces {
			slices.SortStableFunc(states, func(a, b catalog.NamespaceState) int {
				return slices.Index(cl.namespaces, a.Namespace) - slices.Index(cl.namespaces, b.Namespace)
			})
		}
		out = append(out, ContextNamespaces{Context: name, All: cl.target.AllNamespaces, Namespaces: states})
	}
	return out
}

// ChangeNamespaces sets, adds or removes forwarded namespaces while running:
// new namespaces' Services are forwarded as soon as they are listed,
// removed ones' listeners, addresses and hosts entries go. A namespace
// without a context applies to every context of this instance.
func (e *Engine) ChangeNamespaces(op string, refs []namespaces.Ref) (NamespaceChange, error) {
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
			return NamespaceChange{}, fmt.Errorf("context %q %w", r.Context, ErrAllNamespaces)
		}
	}
	if len(editable) == 0 {
		e.nsMu.Unlock()
		return NamespaceChange{}, fmt.Errorf("this kubefwd %w", ErrAllNamespaces)
	}

	desired := map[string][]string{}
	var notes []string
	switch op {
	case NamespacesSet:
		var err error
		if desired, err = namespaces.PerContext(refs, editable); err != nil {
			e.nsMu.Unlock()
			return NamespaceChange{}, err
		}
	case NamespacesAdd, NamespacesRemove:
		perCtx, err := namespaces.PerContext(refs, editable)
		if err != nil {
			e.nsMu.Unlock()
			return NamespaceChange{}, err
		}
		for _, name := range editable {
			current := e.clusters[name].namespaces
			next := slices.Clone(current)
			for _, ns := range perCtx[name] {
				has := slices.Contains(current, ns)
				switch {
				case op == NamespacesAdd && has:
					notes = append(notes, fmt.Sprintf("namespace %s is already forwarded%s", ns, inContext(name, editable)))
				case op == NamespacesAdd:
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
		return NamespaceChange{}, fmt.Errorf("unknown namespaces operation %q (want set, add or remove)", op)
	}

	var change NamespaceChange
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
		e.events.emit(Event{Type: EventNamespaces, Context: name, Message: strings.Join(next, ",")})
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
