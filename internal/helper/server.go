//go:build unix

package helper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/peercred"
)

// DefaultSocket is where the helper listens and clients look for it.
func DefaultSocket() string {
	if runtime.GOOS == "darwin" {
		return "/var/run/kubefwd/helper.sock"
	}
	return "/run/kubefwd/helper.sock"
}

// AliasManager adds and removes loopback aliases (lo0 on macOS; nothing
// to do on Linux).
type AliasManager interface {
	Add(netip.Addr) error
	Remove(netip.Addr) error
}

// Server is the helper. Its zero limits take the defaults below.
type Server struct {
	Socket    string
	HostsPath string
	// Allow lists the uids that may use the helper; nobody else can.
	Allow   []int
	Version string
	Log     *slog.Logger
	Aliases AliasManager

	// MaxPerUser bounds one user's open connections, MaxClients everyone's:
	// a flood of connections costs the helper a fixed amount at most.
	MaxPerUser, MaxClients int
	// IdleTimeout closes a connection that sends nothing for this long
	// (clients ping every second). HelloTimeout bounds the first message.
	IdleTimeout, HelloTimeout time.Duration

	mu       sync.Mutex
	conns    map[net.Conn]int // open connections and their uid
	byBlock  map[string]bool  // hosts blocks of live sessions
	aliasRef map[netip.Addr]int
	wg       sync.WaitGroup
}

func (s *Server) defaults() {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.MaxPerUser == 0 {
		s.MaxPerUser = 16
	}
	if s.MaxClients == 0 {
		s.MaxClients = 256
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = time.Minute
	}
	if s.HelloTimeout == 0 {
		s.HelloTimeout = 10 * time.Second
	}
	s.conns = map[net.Conn]int{}
	s.byBlock = map[string]bool{}
	s.aliasRef = map[netip.Addr]int{}
}

// Serve runs the helper until ctx ends. On the way out every session is
// closed, so every client's hosts block and aliases are removed.
func (s *Server) Serve(ctx context.Context) error {
	s.defaults()
	if s.HostsPath == "" {
		return errors.New("helper: no hosts file")
	}
	if _, err := os.Stat(s.HostsPath); err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	ln, err := listenSocket(s.Socket)
	if err != nil {
		return err
	}
	// Blocks of clients that died while no helper watched them (the
	// helper itself was killed) go now; clients still running reconnect
	// and take theirs over.
	stale := &hosts.File{Path: s.HostsPath}
	if gone, err := stale.RemoveStale(); err != nil {
		s.Log.Warn("cannot clean the hosts file", "err", err)
	} else {
		for _, o := range gone {
			s.Log.Info("removed hosts entries of a client that is no longer running", "pid", o.PID)
		}
	}
	s.Log.Info("helper ready", "socket", s.Socket, "hosts", s.HostsPath, "allow", s.Allow)

	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			s.Log.Warn("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, c.(*net.UnixConn))
		}()
	}
	ln.Close()
	s.wg.Wait()
	return nil
}

// listenSocket creates the socket, readable and writable by everyone:
// access is decided per connection from the peer's credentials. A socket
// left by a dead helper is replaced; a live helper's is not.
func listenSocket(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("helper socket directory: %w", err)
	}
	if info, err := os.Lstat(path); err == nil {
		if info.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; not replacing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another helper is already serving %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("helper socket: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// session is one client connection's state; only its goroutine touches it.
type session struct {
	cred    peercred.Cred
	allowed bool
	file    *hosts.File // nil until hello
	aliases map[netip.Addr]bool
}

func (s *Server) handle(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	cred, err := peercred.Of(c)
	if err != nil {
		s.Log.Warn("refused a connection without credentials", "err", err)
		return
	}
	if !s.admit(c, cred.UID) {
		s.Log.Warn("refused a connection: too many open", "uid", cred.UID)
		writeResponse(c, Response{Error: "too many connections to the helper"}, nil)
		return
	}
	sess := &session{cred: cred, allowed: slices.Contains(s.Allow, cred.UID), aliases: map[netip.Addr]bool{}}
	defer s.end(sess, c)

	r := bufio.NewReaderSize(c, 64<<10)
	for {
		timeout := s.IdleTimeout
		if sess.file == nil {
			timeout = s.HelloTimeout
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		line, err := readLine(r, MaxMessage)
		if err != nil {
			if ctx.Err() == nil && !isClosed(err) {
				s.Log.Warn("closing a client connection", "uid", cred.UID, "pid", cred.PID, "err", err)
				writeResponse(c, Response{Error: err.Error()}, nil)
			}
			return
		}
		req, err := decodeRequest(line)
		if err != nil {
			writeResponse(c, Response{Error: err.Error()}, nil)
			continue
		}
		resp, ln, fatal := s.serve(ctx, sess, req)
		err = writeResponse(c, resp, ln)
		if ln != nil {
			ln.Close() // the client has its own descriptor now
		}
		// A user not allowed gets one answer (info, or why not) and no
		// connection to hold on to.
		if err != nil || fatal || !sess.allowed {
			return
		}
	}
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNRESET)
}

// admit counts c against the limits, or refuses it.
func (s *Server) admit(c net.Conn, uid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= s.MaxClients {
		return false
	}
	n := 0
	for _, u := range s.conns {
		if u == uid {
			n++
		}
	}
	if n >= s.MaxPerUser {
		return false
	}
	s.conns[c] = uid
	return true
}

// end cleans up after a session, however it ended: its hosts block and
// aliases go with it.
func (s *Server) end(sess *session, c net.Conn) {
	if sess.file != nil {
		if err := sess.file.Remove(); err != nil {
			s.Log.Error("cannot remove a client's hosts entries", "block", sess.file.Block.ID, "err", err)
		}
		s.Log.Info("client gone; its hosts entries are removed", "uid", sess.cred.UID, "pid", sess.cred.PID, "block", sess.file.Block.ID)
	}
	for a := range sess.aliases {
		s.releaseAlias(a)
	}
	s.mu.Lock()
	delete(s.conns, c)
	if sess.file != nil {
		delete(s.byBlock, sess.file.Block.ID)
	}
	s.mu.Unlock()
}

// serve answers one request. ln, when not nil, is a listening socket to
// pass along (the caller closes it); fatal ends the session.
func (s *Server) serve(ctx context.Context, sess *session, req Request) (resp Response, ln *os.File, fatal bool) {
	resp.UID = sess.cred.UID
	if req.Op == OpInfo {
		resp.OK, resp.Allowed, resp.Version, resp.HostsPath = true, sess.allowed, s.Version, s.HostsPath
		return resp, nil, false
	}
	if !sess.allowed {
		resp.NotAllowed = true
		resp.Error = fmt.Sprintf("user %s is not allowed to use this kubefwd helper; "+
			"root can allow it with: sudo kubefwd helper install --allow-user %s", UserName(sess.cred.UID), UserName(sess.cred.UID))
		return resp, nil, true
	}
	if req.Op == OpHello {
		if sess.file != nil {
			resp.Error = "hello: this connection already has a session"
			return resp, nil, false
		}
		return s.hello(sess, req), nil, false
	}
	if sess.file == nil {
		resp.Error = fmt.Sprintf("%q before hello: start the session first", clip(req.Op))
		return resp, nil, false
	}
	var err error
	switch req.Op {
	case OpPing:
	case OpListen:
		ln, err = s.listen(ctx, req)
	case OpHosts:
		resp.Skipped, err = s.hosts(sess, req.Entries)
	case OpAlias:
		err = s.alias(sess, req)
	default:
		err = fmt.Errorf("unknown operation %q", clip(req.Op))
	}
	if err != nil {
		resp.Error = err.Error()
		return resp, nil, false
	}
	resp.OK = true
	return resp, ln, false
}

// hello starts a session: its hosts block is named after the user and the
// instance, and no other live connection can hold the same one.
func (s *Server) hello(sess *session, req Request) Response {
	resp := Response{UID: sess.cred.UID}
	if err := CheckInstance(req.Instance); err != nil {
		resp.Error = err.Error()
		return resp
	}
	id := fmt.Sprintf("u%d-%s", sess.cred.UID, req.Instance)
	s.mu.Lock()
	taken := s.byBlock[id]
	if !taken {
		s.byBlock[id] = true
	}
	s.mu.Unlock()
	if taken {
		resp.Error = fmt.Sprintf("instance %s of this user is already connected", req.Instance)
		return resp
	}
	owner := "uid=" + strconv.Itoa(sess.cred.UID)
	if sess.cred.PID > 0 {
		// The client's pid and start time let a later helper, or a kubefwd
		// running as root, remove the block if the client dies unseen.
		owner += " " + hosts.OwnerOf(sess.cred.PID).String()
	}
	sess.file = &hosts.File{Path: s.HostsPath, Block: hosts.Block{ID: id, Owner: owner + " helper"}, AfterWrite: flushDNS(s.Log)}
	s.Log.Info("client connected", "uid", sess.cred.UID, "pid", sess.cred.PID, "block", id)
	resp.OK, resp.Allowed, resp.Version, resp.HostsPath, resp.Block = true, true, s.Version, s.HostsPath, id
	return resp
}

// listen binds a TCP listener on a checked loopback address and returns a
// duplicate of its descriptor to pass to the client.
func (s *Server) listen(ctx context.Context, req Request) (*os.File, error) {
	addr, err := CheckAddr(req.Addr)
	if err != nil {
		return nil, err
	}
	if err := CheckPort(req.Port); err != nil {
		return nil, err
	}
	ap := netip.AddrPortFrom(addr, uint16(req.Port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", ap.String())
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", ap, errors.Unwrap(err))
	}
	defer ln.Close()
	return ln.(*net.TCPListener).File()
}

// hosts replaces the session's block with entries, all checked first: one
// bad entry refuses the whole request and nothing changes.
func (s *Server) hosts(sess *session, in []Entry) ([]hosts.Skipped, error) {
	if len(in) > MaxEntries {
		return nil, fmt.Errorf("%d hosts entries: at most %d per client", len(in), MaxEntries)
	}
	entries := make([]hosts.Entry, 0, len(in))
	for i, e := range in {
		addr, err := CheckAddr(e.Addr)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if len(e.Names) == 0 || len(e.Names) > MaxNamesPerLine {
			return nil, fmt.Errorf("entry %d: want 1 to %d names", i+1, MaxNamesPerLine)
		}
		for _, n := range e.Names {
			if err := CheckName(n); err != nil {
				return nil, fmt.Errorf("entry %d: %w", i+1, err)
			}
		}
		entries = append(entries, hosts.Entry{Addr: addr, Names: e.Names})
	}
	return sess.file.Apply(entries)
}

// alias adds or removes a loopback alias for the session; an address
// stays while any session uses it.
func (s *Server) alias(sess *session, req Request) error {
	addr, err := CheckAddr(req.Addr)
	if err != nil {
		return err
	}
	if req.Remove {
		if sess.aliases[addr] {
			delete(sess.aliases, addr)
			s.releaseAlias(addr)
		}
		return nil
	}
	if sess.aliases[addr] {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aliasRef[addr] == 0 && s.Aliases != nil {
		if err := s.Aliases.Add(addr); err != nil {
			return fmt.Errorf("cannot add loopback alias %s: %w", addr, err)
		}
	}
	s.aliasRef[addr]++
	sess.aliases[addr] = true
	return nil
}

func (s *Server) releaseAlias(addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliasRef[addr]--
	if s.aliasRef[addr] > 0 {
		return
	}
	delete(s.aliasRef, addr)
	if s.Aliases != nil {
		if err := s.Aliases.Remove(addr); err != nil {
			s.Log.Warn("cannot remove loopback alias", "addr", addr, "err", err)
		}
	}
}

// writeResponse sends one answer line, with ln's descriptor attached when
// ln is not nil.
func writeResponse(c *net.UnixConn, resp Response, ln *os.File) error {
	data, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	var oob []byte
	if ln != nil {
		oob = syscall.UnixRights(int(ln.Fd()))
	}
	_, _, err = c.WriteMsgUnix(data, oob, nil)
	return err
}

// UserName is uid's login name, or the number when it has none.
func UserName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func flushDNS(log *slog.Logger) func() {
	return func() {
		if err := hosts.FlushDNSCache(); err != nil {
			log.Warn("cannot flush the DNS cache", "err", err)
		}
	}
}
