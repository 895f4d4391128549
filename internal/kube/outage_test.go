package kube

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// serveOn serves a fixed answer on addr until the returned stop is called.
func serveOn(t *testing.T, addr string) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})}
	go srv.Serve(ln)
	return func() { srv.Close() }
}

// Once the API server has answered, a watch or list of what kubefwd
// follows waits out an outage (the server gone, then back on its address)
// instead of failing; before the first answer, and for other requests, a
// refused connection fails at once.
func TestOutageRetry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := &OutageRetry{RetryEvery: 50 * time.Millisecond}
	client := &http.Client{Transport: o.Wrap(&http.Transport{DisableKeepAlives: true})}
	get := func(ctx context.Context, path string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	const watch = "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices?watch=true"

	// Never reached: fails at once.
	if err := get(t.Context(), watch); err == nil {
		t.Fatal("a watch before the server ever answered did not fail")
	}

	stop := serveOn(t, addr)
	if err := get(t.Context(), "/api/v1/namespaces/demo/services"); err != nil {
		t.Fatal(err)
	}
	stop()

	// Other requests fail at once during the outage.
	for _, path := range []string{"/api/v1/namespaces", "/api/v1/namespaces/demo/pods/web-1/log?follow=true"} {
		if err := get(t.Context(), path); err == nil {
			t.Errorf("%s did not fail while the server was down", path)
		}
	}

	// A watch waits until the server is back.
	back := make(chan func(), 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		back <- serveOn(t, addr)
	}()
	start := time.Now()
	if err := get(t.Context(), watch); err != nil {
		t.Fatalf("the watch failed during the outage instead of waiting: %v", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("answered after %s, before the server was back", waited)
	}
	(<-back)()

	// Waiting ends with the request's context.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := get(ctx, watch); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a waiting watch whose context ended returned %v", err)
	}
}
