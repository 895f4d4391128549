package relay

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Ask sends r on rw (a stream to the relay pod's port) and reads the
// relay's answer; from then on rw carries a TCP target's bytes, or for UDP
// framed datagrams (WriteDatagram, ReadDatagram). It reads the answer a
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
