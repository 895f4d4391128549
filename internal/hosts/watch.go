package hosts

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed whenever the file may have been changed by anyone:
// written in place, replaced by a rename, removed or created. Other
// programs rewrite hosts files (VPN clients, network managers, editors)
// and may drop kubefwd's block; the caller applies its entries again,
// which leaves an unchanged file untouched, so its own writes settle
// after one more look. The directory is watched, not the file, so a
// replaced file is still followed. add runs the watch's setup (with the
// rights the file is written with); bursts are reported once. It returns
// when ctx ends, or at once when the directory cannot be watched.
func (f *File) Watch(ctx context.Context, add func(func() error) error, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("cannot watch %s: %w", f.Path, err)
	}
	defer w.Close()
	path := filepath.Clean(f.Path)
	if err := add(func() error { return w.Add(filepath.Dir(path)) }); err != nil {
		return fmt.Errorf("cannot watch %s: %w", filepath.Dir(path), err)
	}
	const settle = 50 * time.Millisecond
	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == path {
				timer.Reset(settle)
			}
		case _, ok := <-w.Errors:
			if !ok {
				return nil
			}
			timer.Reset(settle) // events may have been lost: look again
		case <-timer.C:
			changed()
		}
	}
}
