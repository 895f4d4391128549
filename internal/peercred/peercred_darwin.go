package peercred

import "golang.org/x/sys/unix"

// fromFD reads LOCAL_PEERCRED (what getpeereid uses) and LOCAL_PEERPID.
func fromFD(fd int) (Cred, error) {
	x, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return Cred{}, err
	}
	c := Cred{UID: int(x.Uid), GID: -1}
	if x.Ngroups > 0 {
		c.GID = int(x.Groups[0])
	}
	if pid, err := unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID); err == nil {
		c.PID = pid
	}
	return c, nil
}
