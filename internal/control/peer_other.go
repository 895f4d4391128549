//go:build !linux && !darwin

package control

import (
	"errors"
	"net"
)

// peerUID cannot be known here; the API then admits nobody but root.
func peerUID(net.Conn) (int, error) {
	return -1, errors.New("peer credentials are not available on this platform")
}
