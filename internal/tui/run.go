package tui

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/kubefwd/kubefwd/internal/api"
)

// Options are what Run needs.
type Options struct {
	// Connect finds the instance. It is called again whenever the instance
	// goes away, so the view reattaches when one runs again.
	Connect func() (Backend, error)
	// Instance names it in the header.
	Instance string
	// OwnLog, if set, carries the instance's own log lines to a pane
	// (kubefwd svc --tui); Run stops reading it when it returns.
	OwnLog <-chan string
	// Terminal; nil means the process's.
	Input  io.Reader
	Output io.Writer
	// Environ, if set, is the environment the terminal is judged by
	// (TERM, NO_COLOR, COLORTERM).
	Environ []string
}

// Poll intervals: the status stream's, and the wait before looking for an
// instance again.
const (
	statusInterval = time.Second
	retryAttach    = time.Second
	recentEvents   = 200
)

// Run shows the view until the user quits or ctx ends.
func Run(ctx context.Context, o Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := []tea.ProgramOption{tea.WithContext(ctx)}
	if o.Input != nil {
		opts = append(opts, tea.WithInput(o.Input))
	}
	if o.Output != nil {
		opts = append(opts, tea.WithOutput(o.Output))
	}
	if o.Environ != nil {
		opts = append(opts, tea.WithEnvironment(o.Environ))
	}
	p := tea.NewProgram(New(o.Instance, o.OwnLog != nil), opts...)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the wait: the feeders stop with ctx
	wg.Go(func() { attachLoop(ctx, o.Connect, p.Send) })
	if o.OwnLog != nil {
		wg.Go(func() { feedOwnLog(ctx, o.OwnLog, p.Send) })
	}
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // ended by ctx: the caller asked for it
	}
	return err
}

// attachLoop follows the instance: its status stream and its events, and
// when they end, tries again every second until ctx ends.
func attachLoop(ctx context.Context, connect func() (Backend, error), send func(tea.Msg)) {
	for ctx.Err() == nil {
		b, err := connect()
		if err == nil {
			err = follow(ctx, b, send)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the instance stopped")
		}
		send(detachedMsg{err: err})
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryAttach):
		}
	}
}

// follow streams one instance's status and events until either ends.
func follow(ctx context.Context, b Backend, send func(tea.Msg)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	attached := false
	var wg sync.WaitGroup
	defer wg.Wait()
	statusErr := b.WatchStatus(ctx, statusInterval, func(st api.Status) bool {
		if !attached {
			attached = true
			send(attachedMsg{b: b})
			// Events start once the status has: the instance answers.
			wg.Go(func() {
				defer cancel()
				_ = b.EventsSince(ctx, recentEvents, func(ev api.Event) bool {
					if ev.Type != api.EventSubscribed {
						send(eventMsg{ev: ev})
					}
					return true
				})
			})
		}
		send(statusMsg{st: st, at: time.Now()})
		return true
	})
	cancel()
	return statusErr
}

// feedOwnLog hands the instance's log lines to the view in batches.
func feedOwnLog(ctx context.Context, lines <-chan string, send func(tea.Msg)) {
	for {
		select {
		case <-ctx.Done():
			return
		case l, ok := <-lines:
			if !ok {
				return
			}
			batch := []string{l}
		more:
			for len(batch) < 500 {
				select {
				case l, ok := <-lines:
					if !ok {
						break more
					}
					batch = append(batch, l)
				default:
					break more
				}
			}
			send(ownLogMsg{lines: batch})
		}
	}
}
