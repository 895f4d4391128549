package engine

import (
	"context"
	"time"

	"github.com/kubefwd/kubefwd/internal/loopback"
)

// Saving the address state while running: a kubefwd killed with -9 (or a
// crash, or a power cut) must give the Services that appeared during its
// run the same addresses when it starts again.
const (
	defaultStateDelay = 500 * time.Millisecond
	stateRetryMin     = time.Second
	stateRetryMax     = 30 * time.Second
)

// offerState hands the saver the allocator's state when it changed since
// the last offer (worker only: the allocator is the worker's). Called once
// per burst (settle), so a start-up with thousands of Services copies the
// state a few times, not once per Service.
func (e *Engine) offerState() {
	n := e.alloc.Changes()
	if n == e.stateOffered {
		return
	}
	e.stateOffered = n
	state := e.alloc.State()
	e.stateMu.Lock()
	e.statePending = state
	e.stateMu.Unlock()
	select {
	case e.stateWake <- struct{}{}:
	default:
	}
}

// takeState returns the state not yet written, if any, and clears it.
func (e *Engine) takeState() map[string]loopback.Assignment {
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	s := e.statePending
	e.statePending = nil
	return s
}

// keepState puts back a state that could not be written, unless a newer
// one arrived meanwhile.
func (e *Engine) keepState(s map[string]loopback.Assignment) {
	e.stateMu.Lock()
	if e.statePending == nil {
		e.statePending = s
	}
	e.stateMu.Unlock()
}

// saveState writes the latest offered state until ctx ends: at most one
// write per StateDelay, and after a failure again (backing off) until one
// succeeds. Run's final save at stop follows it.
func (e *Engine) saveState(ctx context.Context) {
	failing := "" // the last error logged: each distinct one once
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.stateWake:
		}
		if !waitFor(ctx, e.opts.StateDelay) {
			return
		}
		retry := stateRetryMin
		for state := e.takeState(); state != nil; state = e.takeState() {
			err := e.opts.State.Save(state)
			if err == nil {
				e.log.Debug("address state saved", "entries", len(state))
				if failing != "" {
					e.log.Info("address state saved again", "entries", len(state))
					failing = ""
				}
				break
			}
			e.keepState(state)
			if msg := err.Error(); msg != failing {
				failing = msg
				e.log.Warn("cannot save the address state; retrying (a kubefwd killed now would give new Services other addresses next time)", "err", err)
			}
			if !waitFor(ctx, retry) {
				return
			}
			retry = min(2*retry, stateRetryMax)
		}
	}
}

// waitFor waits d, or less if ctx ends first; it reports whether ctx is
// still live.
func waitFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
