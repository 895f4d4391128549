package asuser

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// become gives the calling (locked) thread u's credential with settid(2),
// the system call behind pthread_setugid_np: per thread, as on Linux.
// Supplementary groups follow u's group membership as the system resolves
// it for a per-thread credential.
func (u *User) become() error {
	if _, _, errno := unix.Syscall(unix.SYS_SETTID, uintptr(u.UID), uintptr(u.GID), 0); errno != 0 {
		return fmt.Errorf("settid: %w", errno)
	}
	return nil
}
