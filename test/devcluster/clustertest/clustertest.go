// Package clustertest gives Go tests a real devcluster: one shared by every
// test of a test binary (started on first use, stopped by Main), or a private
// one for tests that break things (stopping the apiserver, say).
//
//	func TestMain(m *testing.M) { clustertest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := clustertest.Shared(t)
//		…
//	}
//
// Real-cluster tests skip, saying what is missing, when the cluster cannot be
// built here (no Go module proxy, -short). With KUBEFWD_REQUIRE_DEVCLUSTER=1
// (set by CI) every such skip is a failure instead.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/test/devcluster/binaries"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/seed"
	"github.com/kubefwd/kubefwd/test/needs"
)

// RequireEnv, when "1", turns every skip of a real-cluster test into a failure.
const RequireEnv = needs.Env

// The shared cluster of this test binary. Package state is the point here:
// one cluster per process, owned by Main.
var shared struct {
	sync.Mutex
	c   *cluster.Cluster
	err error // a failed start is not retried by every test
}

// Main runs the tests and then stops the shared cluster, if one was started.
func Main(m *testing.M) {
	code := m.Run()
	shared.Lock()
	c := shared.c
	shared.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := c.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "clustertest: stop shared cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		cancel()
	}
	os.Exit(code)
}

// Shared returns the test binary's shared cluster, starting it on first use.
// The caller must not stop it; Main does.
func Shared(t testing.TB) *cluster.Cluster {
	t.Helper()
	preflight(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.c == nil && shared.err == nil {
		// It outlives the test that starts it, so it cannot log to that test.
		shared.c, shared.err = start(os.Stderr)
	}
	if shared.err != nil {
		fail(t, shared.err)
	}
	return shared.c
}

// New starts a cluster for this test alone and stops it when the test ends,
// whether it passed or not. extraArgs go to the components, as
// cluster.Options.ExtraArgs.
func New(t testing.TB, extraArgs ...string) *cluster.Cluster {
	t.Helper()
	preflight(t)
	c, err := start(testLog{t}, extraArgs...)
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop cluster %s: %v", c.Name, err)
		}
	})
	return c
}

// Skip skips a real-cluster test, or fails it when CI requires the cluster.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	needs.Skip(t, "real-cluster test: "+format, args...)
}

func preflight(t testing.TB) {
	t.Helper()
	if testing.Short() {
		Skip(t, "-short is set")
	}
	if runtime.GOOS != "linux" {
		Skip(t, "the devcluster runs on Linux only (GOOS=%s)", runtime.GOOS)
	}
}

// buildError marks a failure to produce the binaries: on a machine without a
// Go module proxy that is a missing prerequisite, not a test failure.
type buildError struct{ error }

func start(logw io.Writer, extraArgs ...string) (*cluster.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	bins, err := binaries.Ensure(ctx, binaries.Options{Log: os.Stderr})
	if err != nil {
		return nil, buildError{err}
	}
	c, err := cluster.Start(ctx, cluster.Options{Binaries: bins, Log: logw, ExtraArgs: extraArgs})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func fail(t testing.TB, err error) {
	t.Helper()
	var be buildError
	if errors.As(err, &be) {
		Skip(t, "cannot build the cluster binaries (is the Go module proxy reachable?): %v", be.error)
	}
	t.Fatalf("start devcluster: %v", err)
}

// testLog sends cluster diagnostics to the log of the test that started it.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", p)
	return len(p), nil
}

// Seeded returns the shared cluster with a seed ("demo", "scale:NxM")
// applied, once per test binary.
func Seeded(t testing.TB, spec string) *cluster.Cluster {
	t.Helper()
	c := Shared(t)
	s, err := seed.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	seeds.Lock()
	defer seeds.Unlock()
	if seeds.done == nil {
		seeds.done = map[string]error{}
	}
	err, applied := seeds.done[spec]
	if !applied {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = seed.Apply(ctx, c, s)
		cancel()
		seeds.done[spec] = err
	}
	if err != nil {
		t.Fatalf("seed %s: %v", spec, err)
	}
	return c
}

// Seeds applied to the shared cluster, and their outcome.
var seeds struct {
	sync.Mutex
	done map[string]error
}
