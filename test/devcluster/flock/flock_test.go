package flock

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestAcquireExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	unlock, err := Acquire(t.Context(), path, func() { t.Error("first Acquire had to wait") })
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files, so a second open in this process
	// contends just as another process would.
	waited := make(chan struct{})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, path, func() { close(waited) }); err == nil {
		t.Fatal("second Acquire succeeded while the lock was held")
	}
	select {
	case <-waited:
	default:
		t.Error("second Acquire did not report waiting")
	}
	unlock()
	unlock2, err := Acquire(t.Context(), path, func() { t.Error("Acquire waited for a released lock") })
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}
