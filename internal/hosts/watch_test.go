package hosts

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Watch reports a hosts file written in place, replaced by a rename and
// removed, and stays quiet about the other files of its directory.
func TestWatchReportsEveryWayOfChangingTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	changed := make(chan struct{}, 16)
	done := make(chan error, 1)
	f := &File{Path: path}
	go func() {
		done <- f.Watch(ctx, func(fn func() error) error { return fn() }, func() { changed <- struct{}{} })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	// The watch is set up asynchronously: write until the first report.
	deadline := time.After(5 * time.Second)
	for started := false; !started; {
		os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644)
		select {
		case <-changed:
			started = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no report of a write in place")
		}
	}
	drain := func() {
		for {
			select {
			case <-changed:
			case <-time.After(200 * time.Millisecond):
				return
			}
		}
	}
	expect := func(what string, change func() error) {
		t.Helper()
		drain()
		if err := change(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("no report after %s", what)
		}
	}
	expect("a write in place", func() error { return os.WriteFile(path, []byte("10.0.0.1 a\n"), 0o644) })
	expect("a rename over it", func() error {
		tmp := filepath.Join(dir, "hosts.new")
		if err := os.WriteFile(tmp, []byte("10.0.0.2 b\n"), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	})
	expect("its removal", func() error { return os.Remove(path) })
	drain()
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Error("reported a change to another file of the directory")
	case <-time.After(300 * time.Millisecond):
	}
}

// A directory that cannot be watched is an error at once, not a silent
// watch of nothing.
func TestWatchMissingDirectory(t *testing.T) {
	f := &File{Path: filepath.Join(t.TempDir(), "gone", "hosts")}
	err := f.Watch(t.Context(), func(fn func() error) error { return fn() }, func() {})
	if err == nil {
		t.Fatal("no error for a directory that does not exist")
	}
}
