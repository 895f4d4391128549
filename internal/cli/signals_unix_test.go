//go:build unix

package cli

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first SIGINT or SIGTERM ends the command's context, saying which
// signal it was, and does not kill the process; after stop, nothing is
// caught any more.
func TestFirstSignalCancels(t *testing.T) {
	var errOut strings.Builder
	ctx, in := watchInterrupts(context.Background(), &errOut)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the context")
	}
	if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "terminated") {
		t.Errorf("cause %v, want the signal", cause)
	}
	if got := in.signalled(); got != syscall.SIGTERM {
		t.Errorf("signalled() = %v, want SIGTERM", got)
	}
	in.stop()
	if errOut.Len() > 0 {
		t.Errorf("one signal wrote %q", errOut.String())
	}
}
