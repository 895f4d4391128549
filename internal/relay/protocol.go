// Package relay carries what port-forward cannot: UDP, and TCP to
// addresses that are not pods (selector-less Services' endpoints, an
// ExternalName's target). kubefwd reaches a relay pod through port-forward
// like any pod and asks it, one stream per connection or UDP flow, to dial
// a target inside the cluster; the relay never listens on the cluster
// network.
//
// The protocol, on each stream: the client sends one header line,
//
//	KUBEFWD-RELAY/1 tcp 10.96.0.1:443
//	KUBEFWD-RELAY/1 udp dns.demo.svc.cluster.local:53
//
// and the relay answers "OK" or "ERR <reason>" on a line of its own once it
// has dialed (or failed to). Then TCP is the connection's bytes both ways;
// UDP is datagrams both ways, each framed by its length (two bytes, big
// endian), so their boundaries survive the stream.
package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

const (
	magic = "KUBEFWD-RELAY/1"
	// maxHeader bounds a header line: a DNS name (253) and the rest.
	maxHeader = 512
	// MaxDatagram is the largest UDP payload a frame carries.
	MaxDatagram = 65535
)

// Request is what a stream asks the relay to dial.
type Request struct {
	Network string // "tcp", "udp", or "ping" (no target: its owner is alive)
	Target  string // host:port; the host a name or an IP address
}

// Ping is the request of an owner that keeps its relay from idling out
// while it runs, though no stream may be open for a while.
var Ping = Request{Network: "ping", Target: "-"}

func (r Request) String() string { return r.Network + " " + r.Target }

// Validate says what is wrong with r, if anything.
func (r Request) Validate() error {
	if r.Network == Ping.Network {
		if r.Target != Ping.Target {
			return fmt.Errorf("ping takes no target (%q)", r.Target)
		}
		return nil
	}
	if r.Network != "tcp" && r.Network != "udp" {
		return fmt.Errorf("network %q: want tcp, udp or ping", r.Network)
	}
	host, port, err := net.SplitHostPort(r.Target)
	if err != nil {
		return fmt.Errorf("target %q: %v", r.Target, err)
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " \t\r\n") {
		return fmt.Errorf("target %q: no usable host", r.Target)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("target %q: port must be 1-65535", r.Target)
	}
	return nil
}

// WriteRequest sends r's header line.
func WriteRequest(w io.Writer, r Request) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, err := io.WriteString(w, magic+" "+r.Network+" "+r.Target+"\n")
	return err
}

// ReadRequest reads and checks a header line.
func ReadRequest(br *bufio.Reader) (Request, error) {
	line, err := readLine(br)
	if err != nil {
		return Request{}, err
	}
	fields := strings.Split(line, " ")
	if len(fields) != 3 || fields[0] != magic {
		return Request{}, fmt.Errorf("not a %s header: %q", magic, truncate(line))
	}
	r := Request{Network: fields[1], Target: fields[2]}
	return r, r.Validate()
}

// readLine reads one line of at most maxHeader bytes, without its newline.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if c == '\n' {
			return string(b), nil
		}
		if len(b) == maxHeader {
			return "", fmt.Errorf("header longer than %d bytes", maxHeader)
		}
		b = append(b, c)
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// writeReply answers a request: nil is "OK".
func writeReply(w io.Writer, failure error) error {
	line := "OK\n"
	if failure != nil {
		line = "ERR " + strings.ReplaceAll(failure.Error(), "\n", " ") + "\n"
	}
	_, err := io.WriteString(w, line)
	return err
}

// RemoteError is the relay's refusal of a request.
type RemoteError struct{ Reason string }

func (e *RemoteError) Error() string { return "relay: " + e.Reason }

// parseReply reads the relay's answer line; a refusal is a *RemoteError.
func parseReply(line string) error {
	if line == "OK" {
		return nil
	}
	if reason, ok := strings.CutPrefix(line, "ERR "); ok {
		return &RemoteError{Reason: reason}
	}
	return fmt.Errorf("relay answer: not understood: %q", truncate(line))
}

// WriteDatagram frames one datagram onto w.
func WriteDatagram(w io.Writer, p []byte) error {
	if len(p) > MaxDatagram {
		return fmt.Errorf("datagram of %d bytes: at most %d", len(p), MaxDatagram)
	}
	frame := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(frame, uint16(len(p)))
	copy(frame[2:], p)
	_, err := w.Write(frame)
	return err
}

// ReadDatagram reads one framed datagram into buf (which must hold
// MaxDatagram bytes) and returns its length.
func ReadDatagram(r io.Reader, buf []byte) (int, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n > len(buf) {
		return 0, fmt.Errorf("datagram of %d bytes does not fit a %d-byte buffer", n, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return n, nil
}
