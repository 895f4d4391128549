package peercred

import "syscall"

// fromFD reads SO_PEERCRED.
func fromFD(fd int) (Cred, error) {
	c, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return Cred{}, err
	}
	return Cred{UID: int(c.Uid), GID: int(c.Gid), PID: int(c.Pid)}, nil
}
