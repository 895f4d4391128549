package relay

import (
	"bufio"
	"net"
)

// Open asks the relay at the far end of stream (a connection to the relay
// pod's port) for r, and returns the connection to use from then on: a TCP
// target's bytes, or for UDP framed datagrams (WriteDatagram,
// ReadDatagram). A refusal is a *RemoteError; stream is closed on any
// error.
func Open(stream net.Conn, r Request) (net.Conn, error) {
	if err := WriteRequest(stream, r); err != nil {
		stream.Close()
		return nil, err
	}
	br := bufio.NewReader(stream)
	if err := readReply(br); err != nil {
		stream.Close()
		return nil, err
	}
	return &bufferedConn{Conn: stream, r: br}, nil
}
