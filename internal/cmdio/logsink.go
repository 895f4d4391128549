package cmdio

import (
	"bytes"
	"io"
	"sync"
)

// LogSink is where the process's log goes: stderr, until the live view
// takes it into a pane (kubefwd svc --tui) and gives it back.
type LogSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLogSink writes to w until redirected.
func NewLogSink(w io.Writer) *LogSink { return &LogSink{w: w} }

func (s *LogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Redirect sends the log to w until the returned func restores it.
func (s *LogSink) Redirect(w io.Writer) (restore func()) {
	s.mu.Lock()
	prev := s.w
	s.w = w
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.w = prev
		s.mu.Unlock()
	}
}

// LineChan turns log writes into lines on a channel (C) for the view's
// pane. A full channel drops the line rather than wait: forwarding never
// waits for the screen.
type LineChan struct {
	C       chan string
	mu      sync.Mutex
	partial []byte
}

// NewLineChan buffers n lines.
func NewLineChan(n int) *LineChan { return &LineChan{C: make(chan string, n)} }

func (l *LineChan) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case l.C <- string(l.partial[:i]):
		default:
		}
		l.partial = l.partial[i+1:]
	}
}
