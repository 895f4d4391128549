// Package backend provides the real TCP servers that stand in for the
// containers of devcluster pods. Each one is an HTTP/1.1 server (keep-alive)
// that says which pod and port it is, streams bytes and echoes bodies.
package backend

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// MaxBytes bounds /bytes so a typo cannot stream forever.
const MaxBytes = 1 << 40

// Handler serves one pod's port:
//
//	GET  /          200 "pod=<namespace>/<pod> port=<port>\n"
//	GET  /bytes?n=N 200 with exactly N bytes
//	POST /echo      200 with the request body
func Handler(namespace, pod string, port int32) http.Handler {
	identity := fmt.Sprintf("pod=%s/%s port=%d\n", namespace, pod, port)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, identity)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > MaxBytes {
			http.Error(w, fmt.Sprintf("n must be an integer between 0 and %d", int64(MaxBytes)), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte('a' + i%26)
		}
		for n > 0 {
			chunk := buf
			if n < int64(len(chunk)) {
				chunk = chunk[:n]
			}
			m, err := w.Write(chunk)
			if err != nil {
				return // client went away
			}
			n -= int64(m)
		}
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		// Echoing writes before the body is read to its end; without full
		// duplex, net/http's HTTP/1 server stops the body at the first
		// flush and a keep-alive client gets a short answer.
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
		io.Copy(w, r.Body)
	})
	return mux
}

// logged writes a line per request to w (when not nil) before serving it.
func logged(h http.Handler, port int32, w io.Writer) http.Handler {
	if w == nil {
		return h
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "port %d: %s %s from %s\n", port, r.Method, r.URL.RequestURI(), r.RemoteAddr)
		h.ServeHTTP(rw, r)
	})
}

// Server is one running backend.
type Server struct {
	pod  int32 // the container port this server stands in for
	ln   net.Listener
	http *http.Server
	done chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]http.ConnState // open connections; guarded by mu
}

// Start listens on 127.0.0.1 (a kernel-chosen port) and serves Handler.
func Start(namespace, pod string, port int32) (*Server, error) {
	return StartLogging(namespace, pod, port, nil)
}

// StartLogging is Start with an access log: a line per request, as a
// container would print it (the pod's log, through kwok's Logs).
func StartLogging(namespace, pod string, port int32, accessLog io.Writer) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend for %s/%s:%d: %w", namespace, pod, port, err)
	}
	s := &Server{
		pod: port,
		ln:  ln,
		// An idle timeout, as real servers have: kwok does not pass a
		// client's half-close on, so an idle keep-alive connection would
		// otherwise stay open forever.
		http:  &http.Server{Handler: logged(Handler(namespace, pod, port), port, accessLog), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second},
		done:  make(chan struct{}),
		conns: map[net.Conn]http.ConnState{},
	}
	s.http.ConnState = s.track
	go func() {
		defer close(s.done)
		// Serve returns ErrServerClosed after Close/Shutdown, or the
		// listener's error; either way the backend is gone.
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

// Port is the local port the server listens on.
func (s *Server) Port() int32 { return int32(s.ln.Addr().(*net.TCPAddr).Port) }

// PodPort is the container port the server stands in for.
func (s *Server) PodPort() int32 { return s.pod }

// Close stops the server and drops its open connections, as a pod's death would.
func (s *Server) Close() error {
	err := s.http.Close()
	<-s.done
	return err
}

func (s *Server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(s.conns, c)
		return
	}
	s.conns[c] = st
}

// busy reports whether a connection is being served or may still bring a
// request (accepted, nothing read yet).
func (s *Server) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.conns {
		if st == http.StateNew || st == http.StateActive {
			return true
		}
	}
	return false
}

// Drain stops the server the way a well-behaved container does on SIGTERM:
// it accepts nothing new, answers every request on a connection it had
// already accepted (also one whose bytes are still on their way), closes
// each connection after its answer, and closes what is left when ctx ends.
// http.Server.Shutdown is not that: a request read after it began is
// dropped without an answer, and a pod that drops requests it accepted is
// a broken pod no forwarder can hide.
func (s *Server) Drain(ctx context.Context) error {
	s.http.SetKeepAlivesEnabled(false) // also closes idle connections
	s.ln.Close()
	<-s.done
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.busy() {
		select {
		case <-ctx.Done():
			s.http.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return s.http.Close()
}
