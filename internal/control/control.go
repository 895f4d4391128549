// Package control is the local API of a running kubefwd: HTTP/JSON on a Unix
// socket in the invoking user's runtime directory, open to that user and
// root only (file modes, and the peer's kernel credentials on every
// connection). `kubefwd status` and `kubefwd refresh` are its clients.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/namespaces"
	"github.com/kubefwd/kubefwd/internal/peercred"
)

// Engine is what the API exposes.
type Engine interface {
	Status() api.Status
	Refresh()
	RefreshServices(services []string) ([]string, error)
	Pause(services []string) ([]string, error)
	Logs(ctx context.Context, req api.LogsRequest, begin func(api.LogSource) io.Writer) error
	Resume(services []string) ([]string, error)
	Namespaces() []api.ContextNamespaces
	ClusterNamespaces(ctx context.Context) []api.ClusterNamespaces
	ChangeNamespaces(op string, refs []namespaces.Ref) (api.NamespaceChange, error)
	Subscribe() api.Subscription
}

// Dir is the directory holding the sockets of uid's instances:
// $XDG_RUNTIME_DIR/kubefwd (for the current user), /run/user/UID/kubefwd, or
// a private directory under the system temp dir (see tempBase).
func Dir(uid int) string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && uid == os.Getuid() {
		return filepath.Join(d, "kubefwd")
	}
	if d := filepath.Join("/run/user", strconv.Itoa(uid)); isDir(d) {
		return filepath.Join(d, "kubefwd")
	}
	return filepath.Join(tempBase(), "kubefwd-"+strconv.Itoa(uid))
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// Server serves the API for one instance.
type Server struct {
	Engine Engine
	Log    *slog.Logger
	// UID is the user allowed besides root (the invoking user under sudo),
	// who must own the socket's directory.
	UID int
	// User, if set, is whose rights the socket and its directory are made
	// with (the invoking user under sudo); nil means this process's.
	User *asuser.User
	// Stop, if set, ends the instance (POST /v1/stop).
	Stop func()
}

// maxBody bounds request bodies: every request is small.
const maxBody = 1 << 20

// Serve listens on dir/id.sock until ctx ends, then removes the socket.
// The directory and the socket are made with User's rights: under sudo
// they are in a place the invoking user controls, where root must not
// follow their links or take their files.
func (s *Server) Serve(ctx context.Context, dir, id string) error {
	path := filepath.Join(dir, id+".sock")
	var ln *net.UnixListener
	err := s.User.Do(func() error {
		if err := privateDir(dir, s.UID); err != nil {
			return err
		}
		removeStale(dir, s.UID)
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("an instance named %q is already running (%s)", id, path)
		}
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return err
		}
		// The socket file is removed below with the user's rights, not by
		// the listener's Close on whatever thread runs it.
		l.SetUnlinkOnClose(false)
		ln = l
		return nil
	})
	if err != nil {
		return err
	}
	defer func() { _ = s.User.Do(func() error { return os.Remove(path) }) }()

	srv := &http.Server{
		Handler:           s.authorize(s.routes()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // a stuck client cannot hold the server; events extend it per write
		// Requests end with the instance, event streams included.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uid := -1
			if cred, err := peercred.Of(c); err == nil {
				uid = cred.UID
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

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	// A registry of our own: no process-wide state.
	registry := prometheus.NewRegistry()
	// The runtime's and the process's own figures (goroutines, heap, open
	// files, resident memory) beside kubefwd's: what a long run is watched by.
	registry.MustRegister(newCollector(s.Engine), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /v1/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("POST /v1/refresh", s.refresh)
	mux.HandleFunc("GET /v1/logs", s.logs)
	mux.HandleFunc("POST /v1/pause", s.pauseOrResume("pause", s.Engine.Pause))
	mux.HandleFunc("POST /v1/resume", s.pauseOrResume("resume", s.Engine.Resume))
	mux.HandleFunc("GET /v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Engine.Namespaces())
	})
	mux.HandleFunc("POST /v1/namespaces", s.namespaces)
	mux.HandleFunc("GET /v1/cluster/namespaces", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Engine.ClusterNamespaces(r.Context()))
	})
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		if s.Stop == nil {
			writeError(w, http.StatusNotImplemented, "this instance cannot be stopped through the API")
			return
		}
		s.Log.Info("stop requested through the control API")
		writeJSON(w, http.StatusOK, map[string]bool{"stopping": true})
		s.Stop()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see the README's Control API section)", r.Method, r.URL.Path))
	})
	return mux
}

// Bounds of the status stream's interval.
const (
	minWatchInterval = 100 * time.Millisecond
	maxWatchInterval = time.Minute
)

// status answers GET /v1/status with one snapshot, or with ?watch=1s a
// stream of updates (newline-delimited api.StatusUpdate): the whole status
// first, then every interval what changed, until the client goes away or
// the instance stops. Each stream keeps its own last snapshot, so no
// follower costs the others anything.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("watch")
	if v == "" {
		writeJSON(w, http.StatusOK, s.Engine.Status())
		return
	}
	every, err := time.ParseDuration(v)
	if err != nil || every < minWatchInterval || every > maxWatchInterval {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("watch %q: want an interval from %s to %s, such as 1s", v, minWatchInterval, maxWatchInterval))
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	prev := s.Engine.Status()
	u := api.StatusUpdate{Reset: true, Status: prev}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if enc.Encode(u) != nil || rc.Flush() != nil {
			return
		}
		_ = rc.SetWriteDeadline(time.Time{})
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		next := s.Engine.Status()
		u, prev = api.Diff(prev, next), next
	}
}

// RefreshRequest is the body of POST /v1/refresh; no body or no services
// means every tunnel.
type RefreshRequest struct {
	Services []string `json:"services,omitempty"`
}

// RefreshResponse says what was refreshed.
type RefreshResponse struct {
	Refreshed []string `json:"refreshed"` // namespace/service, or "all"
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	var req RefreshRequest
	if !readJSON(w, r, &req, true) {
		return
	}
	if len(req.Services) == 0 {
		s.Engine.Refresh()
		s.Log.Info("refresh requested: reopening all tunnels")
		writeJSON(w, http.StatusOK, RefreshResponse{Refreshed: []string{"all"}})
		return
	}
	done, err := s.Engine.RefreshServices(req.Services)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	s.Log.Info("refresh requested", "services", done)
	writeJSON(w, http.StatusOK, RefreshResponse{Refreshed: done})
}

// logs streams a pod's log as plain text: GET /v1/logs?service=web&pod=&
// container=&tail=100&follow=true. 400 for a malformed query, 404 for what
// the instance does not forward, 502 when the cluster refuses or fails.
// Once the log has begun, an error can only end the stream.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := api.LogsRequest{Service: q.Get("service"), Pod: q.Get("pod"), Container: q.Get("container")}
	if req.Service == "" {
		writeError(w, http.StatusBadRequest, "logs: name the service (?service=web)")
		return
	}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("tail %q: want a number of lines, 0 or more", t))
			return
		}
		req.Tail = n
	}
	if f := q.Get("follow"); f != "" {
		follow, err := strconv.ParseBool(f)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("follow %q: want true or false", f))
			return
		}
		req.Follow = follow
	}
	out := &flushingWriter{w: w, rc: http.NewResponseController(w)}
	err := s.Engine.Logs(r.Context(), req, func(src api.LogSource) io.Writer {
		h := w.Header()
		h.Set(HeaderLogPod, src.Pod)
		h.Set(HeaderLogContainer, src.Container)
		h.Set(HeaderLogContainers, strings.Join(src.Containers, ","))
		return out
	})
	if err == nil || out.started {
		return
	}
	var nf *api.NotFoundError
	if errors.As(err, &nf) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeError(w, http.StatusBadGateway, err.Error())
}

// Headers of a logs answer: which pod and container it reads, and the
// pod's containers (comma-separated).
const (
	HeaderLogPod        = "Kubefwd-Pod"
	HeaderLogContainer  = "Kubefwd-Container"
	HeaderLogContainers = "Kubefwd-Containers"
)

// flushingWriter sends each write at once (a followed log is read as it
// comes) and starts the 200 answer with the first byte, so that an error
// before any can still be a proper status.
type flushingWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		f.w.WriteHeader(http.StatusOK)
	}
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// ServicesRequest is the body of POST /v1/pause and POST /v1/resume.
type ServicesRequest struct {
	Services []string `json:"services"`
}

// ServicesResponse lists the Services (namespace/service) a pause or a
// resume changed.
type ServicesResponse struct {
	Services []string `json:"services"`
}

// pauseOrResume serves POST /v1/pause or /v1/resume: 400 without services,
// 404 naming what matched nothing.
func (s *Server) pauseOrResume(verb string, do func([]string) ([]string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ServicesRequest
		if !readJSON(w, r, &req, false) {
			return
		}
		if len(req.Services) == 0 {
			writeError(w, http.StatusBadRequest, verb+": name at least one service")
			return
		}
		done, err := do(req.Services)
		if err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		s.Log.Info(verb+" requested", "services", done)
		writeJSON(w, http.StatusOK, ServicesResponse{Services: done})
	}
}

// NamespacesRequest is the body of POST /v1/namespaces.
type NamespacesRequest struct {
	Op         string   `json:"op"`         // set, add or remove
	Namespaces []string `json:"namespaces"` // namespace or context/namespace
}

func (s *Server) namespaces(w http.ResponseWriter, r *http.Request) {
	var req NamespacesRequest
	if !readJSON(w, r, &req, false) {
		return
	}
	switch req.Op {
	case api.NamespacesSet, api.NamespacesAdd, api.NamespacesRemove:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("op %q: want set, add or remove", req.Op))
		return
	}
	if req.Op != api.NamespacesSet && len(req.Namespaces) == 0 {
		writeError(w, http.StatusBadRequest, req.Op+": name at least one namespace")
		return
	}
	refs, err := namespaces.ParseAll(req.Namespaces)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	change, err := s.Engine.ChangeNamespaces(req.Op, refs)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, api.ErrAllNamespaces) {
			code = http.StatusConflict
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, change)
}

// events streams newline-delimited JSON until the client goes away or the
// instance stops (GET /v1/events?recent=N starts with the last N events). A client that cannot keep up is dropped (forwarding
// never waits for it) and told so in a last line.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	recent := 0
	if v := r.URL.Query().Get("recent"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("recent %q: want a number of events, 0 or more", v))
			return
		}
		recent = n
	}
	sub := s.Engine.Subscribe()
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(ev api.Event) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if enc.Encode(ev) != nil || rc.Flush() != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Time{}) // idle streams may wait for events forever
		return true
	}
	// With ?recent=N, the last N events come first; the subscribed line
	// marks where the live ones begin.
	past := sub.Recent()
	for _, ev := range past[max(0, len(past)-recent):] {
		if !send(ev) {
			return
		}
	}
	if !send(api.Event{Time: time.Now(), Type: api.EventSubscribed}) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.Events():
			if !ok {
				if sub.Dropped() {
					send(api.Event{Time: time.Now(), Type: api.EventDropped, Message: "this client fell too far behind; reconnect to follow again"})
				}
				return
			}
			if !send(ev) {
				return
			}
		}
	}
}

// readJSON decodes a small JSON body strictly; an empty body is accepted
// when optional. It answers 400 itself and returns false on bad input.
func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read the request body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return true
		}
		writeError(w, http.StatusBadRequest, "the request needs a JSON body")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed request body: more than one JSON value")
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

type peerKey struct{}

// authorize admits root, the allowed user and this process's own user.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, _ := r.Context().Value(peerKey{}).(int)
		if uid != 0 && uid != s.UID && uid != os.Geteuid() {
			writeError(w, http.StatusForbidden, fmt.Sprintf("permission denied: uid %d may not use this kubefwd", uid))
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
// instance that crashed). Only sockets owned by uid go: a regular file or
// anyone else's socket that happens to be named *.sock stays.
func removeStale(dir string, uid int) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sock") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if !ownSocket(p, uid) {
			continue
		}
		c, err := net.DialTimeout("unix", p, time.Second)
		if err == nil {
			c.Close()
			continue
		}
		_ = os.Remove(p)
	}
}
