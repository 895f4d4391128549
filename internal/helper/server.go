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
	"sync/atomic"
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
	// Policy decides which valid names are published (see Policy). Its
	// zero value refuses internet names, wpad and isatap; Serve fills in
	// MachineNames when it is nil.
	Policy Policy

	// MaxPerUser bounds one allowed user's open connections, MaxClients
	// all allowed users'; peers not allowed have their own MaxRefused
	// connections, which never count against allowed users. A flood of
	// connections costs the helper a fixed amount at most.
	MaxPerUser, MaxClients, MaxRefused int
	// MaxUserBytes bounds the hosts lines of one user's sessions together.
	MaxUserBytes int
	// IdleTimeout closes a connection that sends nothing for this long
	// (clients ping every second). HelloTimeout bounds the first message.
	// RefusedTimeout is all the time a peer not allowed gets.
	IdleTimeout, HelloTimeout, RefusedTimeout time.Duration
	// StaleCheck is how often the hosts file is checked for having been
	// replaced behind the helper's back (see Serve).
	StaleCheck time.Duration

	mu       sync.Mutex
	conns    map[net.Conn]int    // open connections of allowed users and their uid
	refused  int                 // open connections of peers not allowed
	byBlock  map[string]*session // live sessions by hosts block
	aliasRef map[netip.Addr]int
	wg       sync.WaitGroup
	refusals logLimiter
	// fail ends Serve with an error; stale is set once the hosts file the
	// helper sees is no longer the one at its path.
	fail  context.CancelCauseFunc
	stale atomic.Bool
	view  hostsView
}

// ErrHostsReplaced ends Serve when the hosts file at its path was replaced
// while the helper held an older one open through a bind mount (its systemd
// sandbox): every write would go to a file nobody reads. The service
// manager restarts the helper with a fresh view, and clients reconnect and
// send their entries again.
var ErrHostsReplaced = errors.New("the hosts file was replaced behind the helper's bind mount; exiting so that the service manager restarts the helper with the new file (clients reconnect and send their entries again)")

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
	if s.MaxRefused == 0 {
		s.MaxRefused = MaxRefused
	}
	if s.MaxUserBytes == 0 {
		s.MaxUserBytes = MaxUserBytes
	}
	if s.RefusedTimeout == 0 {
		s.RefusedTimeout = RefusedTimeout
	}
	if s.StaleCheck == 0 {
		s.StaleCheck = 2 * time.Second
	}
	if s.Policy.MachineNames == nil {
		s.Policy.MachineNames = MachineNames(s.HostsPath)
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = time.Minute
	}
	if s.HelloTimeout == 0 {
		s.HelloTimeout = 10 * time.Second
	}
	s.conns = map[net.Conn]int{}
	s.byBlock = map[string]*session{}
	s.refusals = logLimiter{log: s.Log, burst: 10, window: 10 * time.Second}
	s.aliasRef = map[netip.Addr]int{}
}

// Serve runs the helper until ctx ends. On the way out every session is
// closed, so every client's hosts block and aliases are removed. It
// returns ErrHostsReplaced, leaving the blocks where they are, when the
// hosts file at its path is no longer the one it writes.
func (s *Server) Serve(parent context.Context) error {
	s.defaults()
	ctx, fail := context.WithCancelCause(parent)
	defer fail(nil)
	s.fail = fail
	if s.HostsPath == "" {
		return errors.New("helper: no hosts file")
	}
	if _, err := os.Stat(s.HostsPath); err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	s.view = viewHosts(s.HostsPath)
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
	s.Log.Info("helper ready", "socket", s.Socket, "hosts", s.HostsPath, "allow", s.Allow, "allowDomains", s.Policy.AllowDomains)
	go s.watchHosts(ctx)

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
	if err := context.Cause(ctx); errors.Is(err, ErrHostsReplaced) {
		return err
	}
	return nil
}

// watchHosts notices a replaced hosts file even when no client writes.
func (s *Server) watchHosts(ctx context.Context) {
	t := time.NewTicker(s.StaleCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.hostsCurrent()
		}
	}
}

// hostsCurrent reports whether the file at HostsPath is still the one the
// helper can write (see hostsView), and ends Serve if not.
func (s *Server) hostsCurrent() bool {
	if s.stale.Load() {
		return false
	}
	if !s.view.replaced(s.HostsPath) {
		return true
	}
	if !s.stale.Swap(true) {
		s.Log.Error("the hosts file was replaced; this helper no longer sees the file at " + s.HostsPath +
			" and exits so that its service manager restarts it; clients reconnect and send their entries again")
		s.fail(ErrHostsReplaced)
	}
	return false
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
	bytes   int // of the block's lines; guarded by Server.mu
}

func (s *Server) handle(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	cred, err := peercred.Of(c)
	if err != nil {
		s.refusals.warn("refused a connection without credentials", "err", err)
		return
	}
	// Who the peer is decides its budget before anything is read.
	allowed := slices.Contains(s.Allow, cred.UID)
	if !s.admit(c, cred.UID, allowed) {
		s.refusals.warn("refused a connection: too many open", "uid", cred.UID, "pid", cred.PID, "allowed", allowed)
		writeResponse(c, Response{Error: "too many connections to the helper; try again later"}, nil)
		return
	}
	sess := &session{cred: cred, allowed: allowed, aliases: map[netip.Addr]bool{}}
	defer s.end(sess, c)
	if !allowed {
		s.refuse(ctx, c, sess)
		return
	}

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
		if err != nil || fatal {
			return
		}
	}
}

// refuse serves a peer that is not allowed: one short message within a
// short time, answered (info, or why not), and the connection closes,
// whatever the message was.
func (s *Server) refuse(ctx context.Context, c *net.UnixConn, sess *session) {
	_ = c.SetDeadline(time.Now().Add(s.RefusedTimeout))
	line, err := readLine(bufio.NewReaderSize(c, 512), MaxRefusedMessage)
	var req Request
	if err == nil {
		req, err = decodeRequest(line)
	}
	if err != nil {
		if !isClosed(err) {
			writeResponse(c, Response{Error: err.Error(), NotAllowed: true, UID: sess.cred.UID}, nil)
		}
		s.refusals.warn("refused a user who is not allowed", "uid", sess.cred.UID, "pid", sess.cred.PID, "err", err)
		return
	}
	resp, _, _ := s.serve(ctx, sess, req)
	writeResponse(c, resp, nil)
	if req.Op != OpInfo {
		s.refusals.warn("refused a user who is not allowed", "uid", sess.cred.UID, "pid", sess.cred.PID, "op", clip(req.Op))
	}
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNRESET)
}

// admit counts c against the limits of its kind of peer, or refuses it.
func (s *Server) admit(c net.Conn, uid int, allowed bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !allowed {
		if s.refused >= s.MaxRefused {
			return false
		}
		s.refused++
		return true
	}
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
		log := s.Log.With("uid", sess.cred.UID, "pid", sess.cred.PID, "block", sess.file.Block.ID)
		switch {
		case !s.hostsCurrent():
			log.Warn("client gone; its hosts entries were not removed, because the hosts file was replaced: the restarted helper removes them unless the client comes back")
		default:
			if err := sess.file.Remove(); err != nil {
				log.Error("client gone, but its hosts entries could not be removed", "err", err)
			} else {
				log.Info("client gone; its hosts entries are removed")
			}
		}
	}
	for a := range sess.aliases {
		s.releaseAlias(a)
	}
	s.mu.Lock()
	if sess.allowed {
		delete(s.conns, c)
	} else {
		s.refused--
	}
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
		return resp, nil, errors.Is(err, ErrHostsReplaced)
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
	_, taken := s.byBlock[id]
	if !taken {
		s.byBlock[id] = sess
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
	sess.file = &hosts.File{Path: s.HostsPath, Block: hosts.Block{ID: id, Owner: owner + " helper"}, AfterWrite: flushDNS(s.Log),
		OnUserLines: func(lines []string) {
			s.Log.Warn("lines someone added inside a client's hosts block were kept and moved out of it", "block", id, "lines", len(lines))
		}}
	s.Log.Info("client connected", "uid", sess.cred.UID, "pid", sess.cred.PID, "block", id)
	resp.OK, resp.Allowed, resp.Version, resp.HostsPath, resp.Block = true, true, s.Version, s.HostsPath, id
	return resp
}

// listen binds a TCP listener, or a UDP socket, on a checked loopback
// address and returns a duplicate of its descriptor to pass to the client.
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
	switch req.Network {
	case "", "tcp":
	case "udp":
		pc, err := lc.ListenPacket(ctx, "udp4", ap.String())
		if err != nil {
			return nil, fmt.Errorf("cannot listen on %s/udp: %w", ap, errors.Unwrap(err))
		}
		defer pc.Close()
		return pc.(*net.UDPConn).File()
	default:
		return nil, fmt.Errorf("network %q: want tcp or udp", clip(req.Network))
	}
	ln, err := lc.Listen(ctx, "tcp4", ap.String())
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", ap, errors.Unwrap(err))
	}
	defer ln.Close()
	return ln.(*net.TCPListener).File()
}

// hosts replaces the session's block with entries. Entries and names are
// checked one by one: what fails a check, the policy or the user's byte
// budget is left out and reported in skipped, and the rest is published.
func (s *Server) hosts(sess *session, in []Entry) ([]hosts.Skipped, error) {
	if len(in) > MaxEntries {
		return nil, fmt.Errorf("%d hosts entries: at most %d per client", len(in), MaxEntries)
	}
	if !s.hostsCurrent() {
		return nil, ErrHostsReplaced
	}
	reasons := s.Policy.Reasons() // reads the machine's names once
	// The budget is taken under the lock, so that two sessions of one
	// user cannot both spend it.
	s.mu.Lock()
	budget := s.MaxUserBytes
	for _, other := range s.byBlock {
		if other != sess && other.cred.UID == sess.cred.UID {
			budget -= other.bytes
		}
	}
	c := checkEntries(in, reasons, max(budget, 0),
		fmt.Sprintf("the helper keeps at most %d bytes of hosts entries per user, across all of a user's kubefwd instances", s.MaxUserBytes))
	sess.bytes = c.bytes
	s.mu.Unlock()

	skipped, err := sess.file.Apply(c.entries)
	if err != nil {
		return nil, err
	}
	for _, k := range skipped {
		c.skip(k.Name, k.Reason)
	}
	if !s.hostsCurrent() {
		// Written to a file nobody reads any more: the restart will put
		// the entries where they belong.
		return nil, ErrHostsReplaced
	}
	return c.report(), nil
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
