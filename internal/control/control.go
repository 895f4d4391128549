// Package control is the local API of a running kubefwd: HTTP/JSON on a Unix
// socket in the invoking user's runtime directory, open to that user and
// root only (file modes, and the peer's kernel credentials on every
// connection). `kubefwd status` and `kubefwd refresh` are its clients.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubefwd/kubefwd/internal/engine"
)

// Engine is what the API exposes.
type Engine interface {
	Status() engine.Status
	Refresh()
}

// Dir is the directory holding the sockets of uid's instances:
// $XDG_RUNTIME_DIR/kubefwd (for the current user), /run/user/UID/kubefwd, or
// a private directory under the system temp dir.
func Dir(uid int) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && uid == os.Getuid() {
		return filepath.Join(d, "kubefwd")
	}
	if d := filepath.Join("/run/user", strconv.Itoa(uid)); isDir(d) {
		return filepath.Join(d, "kubefwd")
	}
	return filepath.Join(os.TempDir(), "kubefwd-"+strconv.Itoa(uid))
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// Server serves the API for one instance.
type Server struct {
	Engine Engine
	Log    *slog.Logger
	// UID is the user allowed besides root (the invoking user under sudo).
	UID int
	GID int
}

// Serve listens on dir/id.sock until ctx ends, then removes the socket.
func (s *Server) Serve(ctx context.Context, dir, id string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	_ = os.Chown(dir, s.UID, s.GID)
	removeStale(dir)
	path := filepath.Join(dir, id+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer os.Remove(path)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	_ = os.Chown(path, s.UID, s.GID)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Engine.Status())
	})
	// A registry of our own: no process-wide state.
	registry := prometheus.NewRegistry()
	registry.MustRegister(newCollector(s.Engine))
	mux.Handle("GET /v1/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/refresh", func(w http.ResponseWriter, r *http.Request) {
		s.Engine.Refresh()
		s.Log.Info("refresh requested: reopening all tunnels")
		writeJSON(w, http.StatusOK, map[string]any{"refreshed": true})
	})
	srv := &http.Server{
		Handler:           s.authorize(mux),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second, // a stuck client cannot hold the server
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uid, err := peerUID(c)
			if err != nil {
				uid = -1
			}
			return context.WithValue(ctx, peerKey{}, uid)
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	err = srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type peerKey struct{}

// authorize admits root, the allowed user and this process's own user.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, _ := r.Context().Value(peerKey{}).(int)
		if uid != 0 && uid != s.UID && uid != os.Geteuid() {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("permission denied: uid %d may not use this kubefwd", uid)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// removeStale deletes sockets in dir that nobody answers on (left by an
// instance that crashed).
func removeStale(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sock") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		c, err := net.DialTimeout("unix", p, time.Second)
		if err == nil {
			c.Close()
			continue
		}
		_ = os.Remove(p)
	}
}
