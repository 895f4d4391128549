package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Open asks the relay at the far end of stream (a connection to the relay
// pod's port) for r, and returns the connection to use from then on: a TCP
// target's bytes, or for UDP framed datagrams (WriteDatagram,
// ReadDatagram). A refusal is a *RemoteError; stream is closed on any
// error.
func Open(stream net.Conn, r Request) (net.Conn, error) {
	if err := Ask(stream, r); err != nil {
		stream.Close()
		return nil, err
	}
	return stream, nil
}

// Ask sends r on rw and reads the relay's answer. It reads the answer a
// byte at a time, never past its end, so that the caller goes on with rw
// itself (the proxy keeps its own stream type). A refusal is a
// *RemoteError.
func Ask(rw io.ReadWriter, r Request) error {
	if err := WriteRequest(rw, r); err != nil {
		return err
	}
	var line []byte
	var b [1]byte
	for {
		n, err := rw.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) >= maxHeader {
				return errors.New("relay answer: longer than 512 bytes")
			}
			line = append(line, b[0])
			continue
		}
		if err == io.EOF {
			return fmt.Errorf("relay answer: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("relay answer: %w", err)
		}
	}
	return parseReply(strings.TrimSuffix(string(line), "\r"))
}
