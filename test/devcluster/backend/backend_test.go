package backend

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	h := Handler("demo", "web-1", 8080)
	for _, tc := range []struct {
		method, target, body string
		wantStatus           int
		wantBody             string
	}{
		{"GET", "/", "", 200, "pod=demo/web-1 port=8080\n"},
		{"GET", "/bytes?n=0", "", 200, ""},
		{"GET", "/bytes?n=5", "", 200, "abcde"},
		{"GET", "/bytes?n=-1", "", 400, ""},
		{"GET", "/bytes?n=x", "", 400, ""},
		{"GET", "/bytes", "", 400, ""},
		{"POST", "/echo", "hello\x00world", 200, "hello\x00world"},
		{"GET", "/nope", "", 404, ""},
		{"POST", "/", "", 405, ""},
	} {
		req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.wantStatus {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, rec.Code, tc.wantStatus)
			continue
		}
		if tc.wantStatus == 200 && rec.Body.String() != tc.wantBody {
			t.Errorf("%s %s: body %q, want %q", tc.method, tc.target, rec.Body.String(), tc.wantBody)
		}
	}
}

func TestBytesLengthIsExact(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler("a", "b", 1).ServeHTTP(rec, httptest.NewRequest("GET", "/bytes?n=200001", nil))
	if rec.Body.Len() != 200001 || rec.Header().Get("Content-Length") != "200001" {
		t.Fatalf("got %d bytes, Content-Length %q", rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
}

// A real server keeps connections alive and closes them on Close, as a
// dying pod would.
func TestServerKeepAliveAndClose(t *testing.T) {
	s, err := Start("ns", "pod", 5432)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(int(s.Port())) + "/"
	client := &http.Client{}
	for range 3 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "pod=ns/pod port=5432\n" {
			t.Fatalf("body %q", body)
		}
	}
	if s.PodPort() != 5432 {
		t.Fatalf("PodPort = %d", s.PodPort())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(url); err == nil {
		t.Fatal("server still answers after Close")
	}
}

// Draining refuses new connections at once but answers a request that
// arrives, after the drain began, on a connection accepted before it, then
// closes that connection and returns.
func TestDrainAnswersAcceptedConnections(t *testing.T) {
	s, err := Start("ns", "pod", 8080)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(int(s.Port()))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !s.busy() { // accepted, nothing sent yet
		if time.Now().After(deadline) {
			t.Fatal("the connection was never accepted")
		}
		time.Sleep(time.Millisecond)
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- s.Drain(ctx)
	}()
	for { // the drain has begun once new connections are refused
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after Drain")
		}
		time.Sleep(time.Millisecond)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: pod\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("a request on an accepted connection got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "pod=ns/pod port=8080\n" || !resp.Close {
		t.Errorf("answer %s %q (close %v); want 200, the pod's name, and the connection closing", resp.Status, body, resp.Close)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Drain did not return once the accepted connection was answered")
	}
}

// /echo gives back every byte of bodies larger than a write buffer, again
// and again on one keep-alive connection, as a long-lived client uses it.
func TestEchoKeepAlive(t *testing.T) {
	srv := httptest.NewServer(Handler("ns", "pod", 8080))
	defer srv.Close()
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, size := range []int{100, 2048, 64 << 10, 1 << 20} {
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		for i := range 3 {
			resp, err := hc.Post(srv.URL+"/echo", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("echo %d of %d bytes: %d back, %v", i, len(body), len(got), err)
			}
		}
	}
}
