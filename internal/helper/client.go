//go:build unix

package helper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/kubefwd/kubefwd/internal/hosts"
)

// ErrUnavailable means no helper answers at the socket.
var ErrUnavailable = errors.New("no kubefwd helper is running")

// NotAllowedError is the helper's refusal of this user.
type NotAllowedError struct{ Msg string }

func (e NotAllowedError) Error() string { return e.Msg }

// Client is one kubefwd instance's session with the helper. It implements
// the engine's listener, hosts and alias needs; Keep holds the session
// open and, if the helper restarts, opens a new one and sends the hosts
// entries and aliases again (the old listeners stay valid: their sockets
// are this process's).
type Client struct {
	socket, instance string
	log              *slog.Logger

	mu      sync.Mutex // one request at a time; guards what follows
	conn    *net.UnixConn
	info    Response
	entries []hosts.Entry // what the block should hold, replayed on reconnect
	aliases map[netip.Addr]bool
	closed  bool
	lost    bool // the loss of the session was logged
}

// Info asks the helper at socket what it thinks of this user; no session
// is started.
func Info(ctx context.Context, socket string) (Response, error) {
	conn, err := dial(ctx, socket)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	resp, fd, err := roundTrip(conn, Request{Op: OpInfo})
	closeFD(fd)
	return resp, err
}

// Dial starts a session as instance.
func Dial(ctx context.Context, socket, instance string, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{socket: socket, instance: instance, log: log, aliases: map[netip.Addr]bool{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connectLocked(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// HostsPath is the hosts file the helper writes.
func (c *Client) HostsPath() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.HostsPath
}

// Keep pings the helper every second until ctx ends, reconnecting when the
// session is lost; then it closes the session, and the helper removes this
// instance's hosts entries.
func (c *Client) Keep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	defer c.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.conn == nil {
			if err := c.connectLocked(ctx); err != nil {
				if !c.lost {
					c.log.Error("lost the kubefwd helper; names and new listeners wait until it is back", "err", err)
					c.lost = true
				}
			} else if c.lost {
				c.log.Info("the kubefwd helper is back; hosts entries restored")
				c.lost = false
			}
		} else if _, err := c.callLocked(Request{Op: OpPing}); err != nil && !c.lost {
			c.log.Warn("the kubefwd helper stopped answering; reconnecting", "err", err)
		}
		c.mu.Unlock()
	}
}

// Close ends the session.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// Listen returns a listener on addr, bound by the helper.
func (c *Client) Listen(addr netip.AddrPort) (net.Listener, error) {
	f, err := c.bind(addr, "")
	if err != nil {
		return nil, err
	}
	defer f.Close() // FileListener made its own copy
	return net.FileListener(f)
}

// ListenPacket returns a UDP socket bound to addr by the helper.
func (c *Client) ListenPacket(addr netip.AddrPort) (net.PacketConn, error) {
	f, err := c.bind(addr, "udp")
	if err != nil {
		return nil, err
	}
	defer f.Close() // FilePacketConn made its own copy
	pc, err := net.FilePacketConn(f)
	if err != nil {
		// A helper older than UDP support binds TCP whatever is asked.
		return nil, fmt.Errorf("the helper did not bind a UDP socket for %s (update it: sudo kubefwd helper install): %w", addr, err)
	}
	return pc, nil
}

// bind asks the helper to bind addr (network "" for TCP, or "udp") and
// returns the descriptor it passed; the caller closes it.
func (c *Client) bind(addr netip.AddrPort, network string) (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readyLocked(); err != nil {
		return nil, err
	}
	resp, fd, err := c.exchangeLocked(Request{Op: OpListen, Network: network, Addr: addr.Addr().String(), Port: int(addr.Port())})
	if err != nil {
		closeFD(fd)
		return nil, err
	}
	what := addr.String()
	if network != "" {
		what += "/" + network
	}
	if fd < 0 {
		return nil, fmt.Errorf("the helper sent no socket for %s (%s)", what, resp.Error)
	}
	return os.NewFile(uintptr(fd), "helper-socket"), nil
}

// Apply makes this instance's hosts block hold exactly entries, but for
// the names it returns as skipped: those the helper's checks refuse (they
// are left out here before sending, where this side can tell), those its
// policy refuses, and those the file's own lines map.
func (c *Client) Apply(entries []hosts.Entry) ([]hosts.Skipped, error) {
	req := hostsRequest(entries)
	local := checkEntries(req.Entries, nil, int(^uint(0)>>1), "")
	if len(local.entries) > MaxEntries {
		for _, e := range local.entries[MaxEntries:] {
			for _, n := range e.Names {
				local.skip(n, fmt.Sprintf("more than %d hosts entries for one kubefwd instance", MaxEntries))
			}
		}
		local.entries = local.entries[:MaxEntries]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = local.entries
	if err := c.readyLocked(); err != nil {
		return local.report(), fmt.Errorf("%w (the entries are sent when it is back)", err)
	}
	resp, err := c.callLocked(hostsRequest(local.entries))
	for _, k := range resp.Skipped {
		local.skip(k.Name, k.Reason)
	}
	return local.report(), err
}

// Watch follows the hosts file the helper writes, read with this process's
// own rights (hosts files and their directories are readable by all), so
// that the engine sends its entries again when another program rewrote the
// file without this instance's block: a helper restores blocks only when a
// client asks (it restarts when the file is replaced by a rename, not when
// it is written in place). Entries the block still holds change nothing.
func (c *Client) Watch(ctx context.Context, changed func()) error {
	f := &hosts.File{Path: c.HostsPath()}
	return f.Watch(ctx, func(do func() error) error { return do() }, changed)
}

// Remove empties the block.
func (c *Client) Remove() error {
	_, err := c.Apply(nil)
	return err
}

// Aliases is the session's loopback aliases (macOS), as the engine uses
// them.
func (c *Client) Aliases() SessionAliases { return SessionAliases{c} }

// SessionAliases asks the helper for loopback aliases; they go when the
// session ends.
type SessionAliases struct{ c *Client }

// Add asks for an alias.
func (a SessionAliases) Add(addr netip.Addr) error { return a.c.alias(addr, false) }

// Remove takes one back.
func (a SessionAliases) Remove(addr netip.Addr) error { return a.c.alias(addr, true) }

// RemoveAll takes back every alias this instance asked for.
func (a SessionAliases) RemoveAll() error {
	a.c.mu.Lock()
	addrs := make([]netip.Addr, 0, len(a.c.aliases))
	for addr := range a.c.aliases {
		addrs = append(addrs, addr)
	}
	a.c.mu.Unlock()
	var errs []error
	for _, addr := range addrs {
		errs = append(errs, a.c.alias(addr, true))
	}
	return errors.Join(errs...)
}

func (c *Client) alias(addr netip.Addr, remove bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if remove {
		delete(c.aliases, addr)
	} else {
		c.aliases[addr] = true
	}
	if err := c.readyLocked(); err != nil {
		return err
	}
	_, err := c.callLocked(Request{Op: OpAlias, Addr: addr.String(), Remove: remove})
	return err
}

// readyLocked makes sure a session is open, opening one if needed.
func (c *Client) readyLocked() error {
	if c.closed {
		return errors.New("the helper session is closed")
	}
	if c.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.connectLocked(ctx)
}

// connectLocked opens a session and sends again what the last one held.
func (c *Client) connectLocked(ctx context.Context) error {
	if c.closed {
		return errors.New("the helper session is closed")
	}
	conn, err := dial(ctx, c.socket)
	if err != nil {
		return err
	}
	resp, fd, err := roundTrip(conn, Request{Op: OpHello, Instance: c.instance})
	closeFD(fd)
	if err != nil {
		conn.Close()
		if resp.NotAllowed {
			return NotAllowedError{resp.Error}
		}
		return err
	}
	c.conn, c.info = conn, resp
	for a := range c.aliases {
		if _, err := c.callLocked(Request{Op: OpAlias, Addr: a.String()}); err != nil {
			return err
		}
	}
	if len(c.entries) > 0 {
		if _, err := c.callLocked(hostsRequest(c.entries)); err != nil {
			return err
		}
	}
	return nil
}

// callLocked sends a request that carries no socket back.
func (c *Client) callLocked(req Request) (Response, error) {
	resp, fd, err := c.exchangeLocked(req)
	closeFD(fd)
	return resp, err
}

// exchangeLocked sends req on the session; a broken connection is dropped
// (Keep or the next call opens a new one).
func (c *Client) exchangeLocked(req Request) (Response, int, error) {
	if c.conn == nil {
		return Response{}, -1, ErrUnavailable
	}
	resp, fd, err := roundTrip(c.conn, req)
	var refused refusal
	if err != nil && !errors.As(err, &refused) {
		c.conn.Close()
		c.conn = nil
	}
	return resp, fd, err
}

func hostsRequest(entries []hosts.Entry) Request {
	req := Request{Op: OpHosts, Entries: make([]Entry, 0, len(entries))}
	for _, e := range entries {
		req.Entries = append(req.Entries, Entry{Addr: e.Addr.String(), Names: e.Names})
	}
	return req
}

func dial(ctx context.Context, socket string) (*net.UnixConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %s", ErrUnavailable, socket)
		}
		return nil, fmt.Errorf("kubefwd helper at %s: %w", socket, err)
	}
	return conn.(*net.UnixConn), nil
}

// refusal is the helper's answer "no" to a request; the session goes on.
type refusal struct{ msg string }

func (r refusal) Error() string { return "the kubefwd helper refused: " + r.msg }

// roundTrip sends one request and reads its answer, with the descriptor
// that came with it (-1 if none). Anything unexpected is closed.
func roundTrip(conn *net.UnixConn, req Request) (Response, int, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return Response{}, -1, err
	}
	deadline := time.Now().Add(30 * time.Second)
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(append(data, '\n')); err != nil {
		return Response{}, -1, fmt.Errorf("kubefwd helper: %w", err)
	}
	var line []byte
	fd := -1
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for !bytes.HasSuffix(line, []byte("\n")) {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		for _, got := range parseRights(oob[:oobn]) {
			if fd < 0 {
				fd = got
			} else {
				closeFD(got)
			}
		}
		line = append(line, buf[:n]...)
		if err != nil {
			closeFD(fd)
			return Response{}, -1, fmt.Errorf("kubefwd helper: %w", err)
		}
		if n == 0 && oobn == 0 {
			closeFD(fd)
			return Response{}, -1, errors.New("kubefwd helper: connection closed")
		}
		if len(line) > MaxMessage {
			closeFD(fd)
			return Response{}, -1, errors.New("kubefwd helper: answer too long")
		}
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		closeFD(fd)
		return Response{}, -1, fmt.Errorf("kubefwd helper: malformed answer: %v", err)
	}
	if !resp.OK {
		closeFD(fd)
		return resp, -1, refusal{resp.Error}
	}
	return resp, fd, nil
}

func parseRights(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

func closeFD(fd int) {
	if fd >= 0 {
		syscall.Close(fd)
	}
}
