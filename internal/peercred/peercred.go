// Package peercred reads what the kernel recorded about the process at the
// other end of a Unix socket when it connected. Unlike anything the peer
// sends, these cannot be forged, so servers that must tell users apart
// (the control API, the privileged helper) trust only them.
package peercred

import (
	"errors"
	"net"
)

// Cred is the connecting process's identity.
type Cred struct {
	UID, GID int
	// PID is the connecting process, or 0 where the platform does not say.
	PID int
}

// Of returns the credentials of c's peer; c must be a Unix socket.
func Of(c net.Conn) (Cred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Cred{}, errors.New("peer credentials: not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var cred Cred
	var credErr error
	if err := raw.Control(func(fd uintptr) { cred, credErr = fromFD(int(fd)) }); err != nil {
		return Cred{}, err
	}
	return cred, credErr
}
