// Package helper is kubefwd's privileged helper: a small root process that
// does for allowed users the only three things kubefwd needs root for —
// listen on loopback addresses (ports below 1024 included), keep their
// entries in the hosts file, and (macOS) add loopback aliases — so that
// everything that talks to Kubernetes runs as the user.
//
// Clients speak newline-delimited JSON over a Unix socket; the helper
// answers each request with one line, and passes listening sockets as
// SCM_RIGHTS ancillary data on the answer. A connection is a session: its
// hosts block and aliases live exactly as long as it stays open. Every
// request is treated as hostile: the peer's identity comes from the kernel
// (never from the message), and every field is checked before use. Peers
// not allowed get a small budget of their own (one short message, a short
// time, a few connections); what allowed users may publish is bounded by
// Policy, by the addresses CheckAddr grants and by MaxUserBytes, and a
// name or entry that fails is skipped and reported, never the whole
// request.
package helper

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/kubefwd/kubefwd/internal/hosts"
)

// Operations.
const (
	OpInfo   = "info"   // who am I to the helper; allowed before hello, by anyone
	OpHello  = "hello"  // start a session: {instance}
	OpPing   = "ping"   // keep-alive, and how a client notices a restarted helper
	OpListen = "listen" // {addr, port, network} → a listening TCP socket, or a bound UDP one
	OpHosts  = "hosts"  // {entries} → this session's hosts block holds exactly these
	OpAlias  = "alias"  // {addr, remove} → lo0 alias (macOS; nothing to do elsewhere)
)

// Limits on what one client can ask for. They bound the helper's memory
// and the size of the hosts file whatever a client sends.
const (
	MaxMessage      = 2 << 20 // bytes in one request line
	MaxEntries      = 10000   // hosts lines per session
	MaxNamesPerLine = 32
	// MaxUserBytes bounds the hosts lines of all of one user's sessions
	// together: every program on the machine reads the whole file.
	MaxUserBytes = 2 << 20
	maxInstance  = 63

	// A peer that is not allowed gets one short message and a short
	// time, and only a few of them are served at once, so that they
	// cannot crowd out allowed users or hold the helper's memory.
	MaxRefusedMessage = 4 << 10
	RefusedTimeout    = 2 * time.Second
	MaxRefused        = 8
)

// Request is one client message.
type Request struct {
	Op       string `json:"op"`
	Instance string `json:"instance,omitempty"`
	Addr     string `json:"addr,omitempty"`
	Port     int    `json:"port,omitempty"`
	// Network is "udp" for a UDP socket; "" (or "tcp") for a TCP listener.
	Network string  `json:"network,omitempty"`
	Entries []Entry `json:"entries,omitempty"`
	Remove  bool    `json:"remove,omitempty"`
}

// Entry is one hosts line as sent over the wire.
type Entry struct {
	Addr  string   `json:"addr"`
	Names []string `json:"names"`
}

// Response answers one request.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`

	// info and hello
	Version string `json:"version,omitempty"`
	UID     int    `json:"uid"`
	Allowed bool   `json:"allowed,omitempty"`
	// NotAllowed: the refusal is of this user, not of the request.
	NotAllowed bool   `json:"notAllowed,omitempty"`
	HostsPath  string `json:"hostsPath,omitempty"`
	Block      string `json:"block,omitempty"`
	// hosts: names left out of the block, each with why (the file's own
	// lines map it, or the helper's policy refuses it).
	Skipped []hosts.Skipped `json:"skipped,omitempty"`
}

// readLine reads one newline-terminated message of at most max bytes
// (newline excluded) without ever buffering more than max+1 bytes of it.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, fmt.Errorf("message longer than %d bytes", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// decodeRequest parses one request strictly: unknown fields and trailing
// data are errors, so a client cannot smuggle anything past the checks.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %v", err)
	}
	if dec.More() {
		return Request{}, errors.New("malformed request: data after the JSON object")
	}
	return req, nil
}

// CheckInstance accepts an instance id: a DNS label, as kubefwd's own ids
// and --instance names are. It becomes part of the hosts block's marker.
func CheckInstance(s string) error {
	if s == "" || len(s) > maxInstance {
		return fmt.Errorf("instance %q: want 1 to %d characters", clip(s), maxInstance)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1) {
			return fmt.Errorf("instance %q: only lower-case letters, digits and inner '-' are allowed", clip(s))
		}
	}
	return nil
}

// systemNet is where the machine's own services listen (127.0.0.1,
// systemd-resolved's 127.0.0.53, Debian's 127.0.1.1 for the host name,
// …). The helper never grants an address there, so an allowed user can
// neither take a port a system service expects nor give a name the
// machine's own address.
var systemNet = netip.MustParsePrefix("127.0.0.0/16")

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// CheckAddr accepts an IPv4 address inside 127.0.0.0/8, outside
// 127.0.0.0/16, and not the /8's broadcast address. Anything else — other
// networks, IPv6, IPv4-mapped IPv6, zones, wildcards — is refused.
func CheckAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("address %q: want an IPv4 address in 127.0.0.0/8", clip(s))
	}
	if !loopbackNet.Contains(a) {
		return netip.Addr{}, fmt.Errorf("address %s is outside 127.0.0.0/8; the helper only hands out loopback addresses", a)
	}
	if systemNet.Contains(a) {
		return netip.Addr{}, fmt.Errorf("address %s is in 127.0.0.0/16, which belongs to the machine's own services; use another loopback address", a)
	}
	if a == netip.AddrFrom4([4]byte{127, 255, 255, 255}) {
		return netip.Addr{}, fmt.Errorf("address %s is the broadcast address of 127.0.0.0/8", a)
	}
	return a, nil
}

// CheckPort accepts 1-65535.
func CheckPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d: want 1-65535", p)
	}
	return nil
}

// clip shortens what a hostile client sent before it is echoed in an
// error, and makes control characters visible.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
