package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts turns SIGINT and SIGTERM into what every command sees: the
// first ends the command's context (it stops in order: svc removes its
// hosts entries), a second runs the command's emergency cleanup, if it set
// one, and exits at once. This is signal.NotifyContext plus the second
// signal, which NotifyContext would swallow.
type interrupts struct {
	sigs     chan os.Signal
	cancel   context.CancelCauseFunc
	errOut   io.Writer
	done     chan struct{} // closed by stop
	finished chan struct{} // closed when the watching goroutine returns

	mu        sync.Mutex
	first     os.Signal // the signal that ended the context, if one did
	forceQuit func()    // what a second signal runs before exiting
}

// watchInterrupts returns ctx, ended by the first SIGINT or SIGTERM, and
// the interrupts watching for them until stop.
func watchInterrupts(ctx context.Context, errOut io.Writer) (context.Context, *interrupts) {
	ctx, cancel := context.WithCancelCause(ctx)
	in := &interrupts{
		sigs: make(chan os.Signal, 2), cancel: cancel, errOut: errOut,
		done: make(chan struct{}), finished: make(chan struct{}),
	}
	signal.Notify(in.sigs, os.Interrupt, syscall.SIGTERM)
	go in.watch()
	return ctx, in
}

func (in *interrupts) watch() {
	defer close(in.finished)
	select {
	case s := <-in.sigs:
		in.mu.Lock()
		in.first = s
		in.mu.Unlock()
		in.cancel(fmt.Errorf("%v signal received", s))
	case <-in.done:
		return
	}
	select {
	case <-in.sigs:
		in.mu.Lock()
		cleanup := in.forceQuit
		in.mu.Unlock()
		if cleanup != nil {
			cleanup()
		}
		fmt.Fprintln(in.errOut, "kubefwd: second signal, exiting now")
		os.Exit(ExitFailure)
	case <-in.done:
	}
}

// setForceQuit sets what a second signal runs before the process exits
// (nil: nothing). A nil in (NewRoot, no signals watched) ignores it.
func (in *interrupts) setForceQuit(cleanup func()) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.forceQuit = cleanup
	in.mu.Unlock()
}

// signalled is the signal that ended the context, or nil.
func (in *interrupts) signalled() os.Signal {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.first
}

// stop stops watching; signals get their default effect again.
func (in *interrupts) stop() {
	signal.Stop(in.sigs)
	close(in.done)
	<-in.finished
	in.cancel(context.Canceled)
}
