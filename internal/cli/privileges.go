package cli

import (
	"errors"
	"net"
	"os"
)

// lowPortsAllowed probes whether this process may bind ports below 1024,
// by binding port 1 on an address kubefwd never hands out.
func lowPortsAllowed() bool {
	ln, err := net.Listen("tcp", "127.255.255.255:1")
	if err == nil {
		ln.Close()
		return true
	}
	if errors.Is(err, os.ErrPermission) {
		return false
	}
	// Taken or unusable for another reason: no verdict, assume allowed and
	// let each listener report its own error.
	return true
}
