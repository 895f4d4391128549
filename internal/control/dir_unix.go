//go:build unix

package control

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// privateDir makes sure dir exists, is a directory and not a symlink, is
// owned by uid and open to nobody else. It is opened without following a
// link and checked through its descriptor, so what is checked is what is
// used; a directory another user made first (a shared /tmp) is refused.
func privateDir(dir string, uid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("control socket directory %s is a symbolic link or not a directory; remove it", dir)
	}
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("control socket directory %s belongs to uid %d, not to uid %d; remove it", dir, st.Uid, uid)
	}
	if st.Mode&0o077 != 0 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("control socket directory %s is open to others and cannot be closed: %w", dir, err)
		}
	}
	return nil
}

// ownSocket reports whether p is a socket (not followed if a link) owned
// by uid.
func ownSocket(p string, uid int) bool {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFSOCK && int(st.Uid) == uid
}
