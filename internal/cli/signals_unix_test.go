//go:build unix

package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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

// A second signal runs the emergency cleanup and exits at once, saying so
// (svc removes its hosts entries there). Exiting ends the process, so the
// test runs in a child: this test binary again.
func TestSecondSignalForcesExit(t *testing.T) {
	if marker := os.Getenv("KUBEFWD_TEST_SECOND_SIGNAL"); marker != "" {
		ctx, in := watchInterrupts(context.Background(), os.Stderr)
		in.setForceQuit(func() { os.WriteFile(marker, []byte("cleaned"), 0o644) })
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		<-ctx.Done() // a command stopping in order, slowly
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		time.Sleep(10 * time.Second)
		os.Exit(0) // the second signal did nothing
	}
	marker := filepath.Join(t.TempDir(), "cleaned")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondSignalForcesExit$")
	cmd.Env = append(os.Environ(), "KUBEFWD_TEST_SECOND_SIGNAL="+marker)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != ExitFailure {
		t.Errorf("exit %d (%v), want %d; stderr:\n%s", code, err, ExitFailure, stderr.String())
	}
	if !strings.Contains(stderr.String(), "kubefwd: second signal, exiting now") {
		t.Errorf("stderr does not say why it exited:\n%s", stderr.String())
	}
	if data, _ := os.ReadFile(marker); string(data) != "cleaned" {
		t.Error("the cleanup did not run before the exit")
	}
}
