// Package filewatch follows one file through every way it can change:
// written in place, replaced by a rename (as editors and many tools save),
// removed or created later. fsnotify does the watching; what this adds is
// watching the directory and settling the bursts of events one save makes.
package filewatch

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long a burst of events must be quiet before it is
// reported: writers often touch a file several times per save.
const settle = 50 * time.Millisecond

// Watcher watches one file's directory.
type Watcher struct {
	path string
	w    *fsnotify.Watcher
}

// Start watches path's directory. add runs the watch's setup, so that the
// caller chooses whose rights it has (func(f func() error) error { return
// f() } for the process's own).
func Start(path string, add func(func() error) error) (*Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("cannot watch %s: %w", path, err)
	}
	path = filepath.Clean(path)
	if err := add(func() error { return w.Add(filepath.Dir(path)) }); err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot watch %s: %w", filepath.Dir(path), err)
	}
	return &Watcher{path: path, w: w}, nil
}

// Run calls changed once after each burst of events for the file, and
// also after a watch error (events may have been lost; onError hears of
// it), until ctx ends.
func (w *Watcher) Run(ctx context.Context, changed func(), onError func(error)) error {
	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == w.path {
				timer.Reset(settle)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return nil
			}
			onError(fmt.Errorf("watching %s: %w", w.path, err))
			timer.Reset(settle)
		case <-timer.C:
			changed()
		}
	}
}

// Close stops the watch.
func (w *Watcher) Close() error { return w.w.Close() }
