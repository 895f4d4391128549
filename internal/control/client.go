package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/engine"
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

// Connect picks the instance: id if given, else the only one running.
func Connect(dir, id string) (*Client, error) {
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
		return nil, fmt.Errorf("no kubefwd instance %q (running: %s)", id, strings.Join(ids, ", "))
	}
	return &Client{Socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://kubefwd"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("permission denied on %s: it belongs to another user", c.Socket)
		}
		return fmt.Errorf("cannot reach kubefwd at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.Unmarshal(body, out)
}

// Status fetches the instance's status.
func (c *Client) Status(ctx context.Context) (engine.Status, error) {
	var st engine.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", &st)
	return st, err
}

// Refresh asks the instance to reopen every tunnel.
func (c *Client) Refresh(ctx context.Context) error {
	var out map[string]any
	return c.do(ctx, http.MethodPost, "/v1/refresh", &out)
}
