package helper

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter logs at most burst lines per window and counts the rest, so
// that a flood of refused connections cannot flood the journal; the next
// line logged says how many were left out.
type logLimiter struct {
	log    *slog.Logger
	burst  int
	window time.Duration

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func (l *logLimiter) warn(msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.start) >= l.window {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.n++
	if l.suppressed > 0 {
		args = append(args, "notLogged", l.suppressed)
		l.suppressed = 0
	}
	l.mu.Unlock()
	l.log.Warn(msg, args...)
}
