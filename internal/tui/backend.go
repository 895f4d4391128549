// Package tui is kubefwd's live view: a full-screen table of every forward
// that follows a running instance through its control API, with details,
// pod logs, events, a namespace browser and actions. It is a client of the
// API only (it imports no engine), so the same view serves `kubefwd svc
// --tui` (attached to its own instance's socket) and `kubefwd ui` (attached
// to a running one, root's included, as the invoking user).
//
// The model is a pure core: messages in, a model and commands out, text at
// a given size. I/O lives in the commands and in Run.
package tui

import (
	"context"
	"io"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Backend is what the view needs of an instance: its control API
// (*control.Client).
type Backend interface {
	WatchStatus(ctx context.Context, interval time.Duration, fn func(api.Status) bool) error
	EventsSince(ctx context.Context, recent int, fn func(api.Event) bool) error
	LogStream(ctx context.Context, req api.LogsRequest) (api.LogSource, io.ReadCloser, error)
	Refresh(ctx context.Context, services ...string) ([]string, error)
	Pause(ctx context.Context, services ...string) ([]string, error)
	Resume(ctx context.Context, services ...string) ([]string, error)
	ChangeNamespaces(ctx context.Context, op string, namespaces []string) (api.NamespaceChange, error)
	ClusterNamespaces(ctx context.Context) ([]api.ClusterNamespaces, error)
}

// Messages from the I/O side.
type (
	// attachedMsg: an instance answers; b is how to reach it.
	attachedMsg struct{ b Backend }
	// detachedMsg: no instance answers (any more), and why.
	detachedMsg struct{ err error }
	// statusMsg: the instance's status at a moment.
	statusMsg struct {
		st api.Status
		at time.Time
	}
	eventMsg  struct{ ev api.Event }
	ownLogMsg struct{ lines []string } // the instance's own log (svc --tui)
	// logOpenedMsg: a pod log began; lines follow on ch until it closes.
	logOpenedMsg struct {
		id  int
		src api.LogSource
		ch  <-chan string
	}
	logLinesMsg struct {
		id    int
		lines []string
		done  bool
		err   error
	}
	// resultMsg: an action finished; text says what it did.
	resultMsg struct {
		text string
		err  error
	}
	namespacesChangedMsg struct{ resultMsg }
	clusterNamespacesMsg struct {
		list []api.ClusterNamespaces
		err  error
	}
	tickMsg time.Time
)
