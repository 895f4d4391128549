package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/internal/catalog"
	"github.com/kubefwd/kubefwd/internal/kubeapi"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// Shutting down while the apiserver is away returns promptly, although
// client-go's list retry is then asleep in a backoff that does not watch
// for stop (with an unbounded wait this takes until that sleep ends).
func TestShutdownWhileAPIServerAway(t *testing.T) {
	c := clustertest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client, err := kubeapi.New(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(catalog.Options{Context: c.Context, Client: client, Namespaces: []string{"default"}}, func(catalog.Key) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Long enough for the retries to back off to sleeps of several seconds.
	time.Sleep(12 * time.Second)
	cancel()
	const bound = 2 * time.Second
	sctx, scancel := context.WithTimeout(context.Background(), bound)
	defer scancel()
	start := time.Now()
	cat.Shutdown(sctx)
	if took := time.Since(start); took > bound+time.Second {
		t.Errorf("Shutdown took %s; it may wait at most %s", took.Round(time.Millisecond), bound)
	}
	if err := c.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The informers still end once the apiserver is back and their sleep
	// is over: nothing is left running for good.
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	if !cat.Shutdown(wctx) {
		t.Error("the informers did not end within 2 minutes of being stopped")
	}
}
