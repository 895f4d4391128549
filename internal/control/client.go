package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/api"
)

// ErrNoInstance means no kubefwd is running for this user.
var ErrNoInstance = errors.New("no kubefwd is running (start one with: sudo kubefwd svc -n NAMESPACE)")

// Instances lists the sockets of running instances in dir.
func Instances(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".sock"); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// Client talks to one instance.
type Client struct {
	Socket string
	http   *http.Client
}

// Connect picks the instance: id if given (a name, or the path of a
// socket), else the only one running.
func Connect(dir, id string) (*Client, error) {
	if strings.Contains(id, "/") {
		return newClient(id), nil
	}
	ids := Instances(dir)
	switch {
	case id != "":
	case len(ids) == 0:
		return nil, ErrNoInstance
	case len(ids) > 1:
		return nil, fmt.Errorf("%d kubefwd instances are running (%s); choose one with --instance", len(ids), strings.Join(ids, ", "))
	default:
		id = ids[0]
	}
	socket := filepath.Join(dir, id+".sock")
	if _, err := os.Stat(socket); err != nil {
		if len(ids) == 0 {
			return nil, fmt.Errorf("no kubefwd instance %q is running", id)
		}
		return nil, fmt.Errorf("no kubefwd instance %q (running: %s)", id, strings.Join(ids, ", "))
	}
	return newClient(socket), nil
}

func newClient(socket string) *Client {
	return &Client{Socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kubefwd"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("permission denied on %s: it belongs to another user", c.Socket)
		}
		return nil, fmt.Errorf("cannot reach kubefwd at %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, c.http, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(body, out)
}

// Status fetches the instance's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// WatchStatus calls fn with the instance's status, then again every
// interval with the changes applied, until ctx ends, the instance stops
// (nil), or fn returns false. Only what changed crosses the socket.
func (c *Client) WatchStatus(ctx context.Context, interval time.Duration, fn func(api.Status) bool) error {
	stream := &http.Client{Transport: c.http.Transport} // follows for as long as asked
	resp, err := c.send(ctx, stream, http.MethodGet, "/v1/status?watch="+url.QueryEscape(interval.String()), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var st api.Status
	for first := true; ; first = false {
		var u api.StatusUpdate
		if err := dec.Decode(&u); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading status: %w", err)
		}
		if first && !u.Reset {
			return errors.New("reading status: the stream did not begin with the whole status")
		}
		st = st.Apply(u)
		if !fn(st) {
			return nil
		}
	}
}

// Refresh asks the instance to reopen the tunnels of services (all when
// none are named) and returns what it refreshed.
func (c *Client) Refresh(ctx context.Context, services ...string) ([]string, error) {
	var out RefreshResponse
	err := c.do(ctx, http.MethodPost, "/v1/refresh", RefreshRequest{Services: services}, &out)
	return out.Refreshed, err
}

// Pause stops forwarding the named Services until Resume.
func (c *Client) Pause(ctx context.Context, services ...string) ([]string, error) {
	var out ServicesResponse
	err := c.do(ctx, http.MethodPost, "/v1/pause", ServicesRequest{Services: services}, &out)
	return out.Services, err
}

// Resume forwards paused Services again.
func (c *Client) Resume(ctx context.Context, services ...string) ([]string, error) {
	var out ServicesResponse
	err := c.do(ctx, http.MethodPost, "/v1/resume", ServicesRequest{Services: services}, &out)
	return out.Services, err
}

// Logs copies a pod's log to w (following it, if asked, until ctx ends).
func (c *Client) Logs(ctx context.Context, req api.LogsRequest, w io.Writer) error {
	_, body, err := c.LogStream(ctx, req)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.Copy(w, body); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading the log: %w", err)
	}
	return nil
}

// LogStream opens a pod's log: which pod and container it reads, and the
// log itself, which the caller closes.
func (c *Client) LogStream(ctx context.Context, req api.LogsRequest) (api.LogSource, io.ReadCloser, error) {
	q := url.Values{"service": {req.Service}}
	if req.Pod != "" {
		q.Set("pod", req.Pod)
	}
	if req.Container != "" {
		q.Set("container", req.Container)
	}
	if req.Tail > 0 {
		q.Set("tail", strconv.FormatInt(req.Tail, 10))
	}
	if req.Follow {
		q.Set("follow", "true")
	}
	stream := &http.Client{Transport: c.http.Transport} // a followed log has no overall timeout
	resp, err := c.send(ctx, stream, http.MethodGet, "/v1/logs?"+q.Encode(), nil)
	if err != nil {
		return api.LogSource{}, nil, err
	}
	src := api.LogSource{Pod: resp.Header.Get(HeaderLogPod), Container: resp.Header.Get(HeaderLogContainer)}
	if cs := resp.Header.Get(HeaderLogContainers); cs != "" {
		src.Containers = strings.Split(cs, ",")
	}
	return src, resp.Body, nil
}

// RecentEvents returns the instance's last events (at most n), oldest
// first, without following.
func (c *Client) RecentEvents(ctx context.Context, n int) ([]api.Event, error) {
	resp, err := c.send(ctx, c.http, http.MethodGet, "/v1/events?recent="+strconv.Itoa(n), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	out := []api.Event{}
	for {
		var ev api.Event
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("reading events: %w", err)
		}
		if ev.Type == api.EventSubscribed {
			return out, nil
		}
		out = append(out, ev)
	}
}

// Namespaces lists what the instance forwards.
func (c *Client) Namespaces(ctx context.Context) ([]api.ContextNamespaces, error) {
	var out []api.ContextNamespaces
	err := c.do(ctx, http.MethodGet, "/v1/namespaces", nil, &out)
	return out, err
}

// ClusterNamespaces lists the namespaces each context's cluster has.
func (c *Client) ClusterNamespaces(ctx context.Context) ([]api.ClusterNamespaces, error) {
	var out []api.ClusterNamespaces
	err := c.do(ctx, http.MethodGet, "/v1/cluster/namespaces", nil, &out)
	return out, err
}

// ChangeNamespaces sets, adds or removes namespaces (`ns` or `context/ns`).
func (c *Client) ChangeNamespaces(ctx context.Context, op string, namespaces []string) (api.NamespaceChange, error) {
	var out api.NamespaceChange
	err := c.do(ctx, http.MethodPost, "/v1/namespaces", NamespacesRequest{Op: op, Namespaces: namespaces}, &out)
	return out, err
}

// Stop asks the instance to shut down.
func (c *Client) Stop(ctx context.Context) error {
	var out map[string]bool
	return c.do(ctx, http.MethodPost, "/v1/stop", nil, &out)
}

// Events calls fn with each event until ctx ends, the instance stops, or fn
// returns false.
func (c *Client) Events(ctx context.Context, fn func(api.Event) bool) error {
	return c.EventsSince(ctx, 0, fn)
}

// EventsSince is Events starting with the last recent events the instance
// kept (they come before the subscribed line).
func (c *Client) EventsSince(ctx context.Context, recent int, fn func(api.Event) bool) error {
	stream := &http.Client{Transport: c.http.Transport} // no overall timeout: it follows for as long as asked
	resp, err := c.send(ctx, stream, http.MethodGet, "/v1/events?recent="+strconv.Itoa(recent), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev api.Event
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading events: %w", err)
		}
		if !fn(ev) {
			return nil
		}
	}
}
