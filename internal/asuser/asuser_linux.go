package asuser

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// become switches the calling (locked) thread's file-system identity. The
// raw system calls change this thread only: Go's syscall.Setgroups and
// friends would change every thread of the process.
func (u *User) become() error {
	groups := append([]int{u.GID}, u.Groups...)
	// unix.Setgroups is the thread's own setgroups(2), not the libc or Go
	// all-threads wrapper.
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	// setfsgid/setfsuid report no errors, only the previous value; ask
	// again to know the change took.
	unix.Setfsgid(u.GID)
	if g, _ := unix.SetfsgidRetGid(-1); g != u.GID {
		return fmt.Errorf("setfsgid(%d) did not take (fsgid is %d)", u.GID, g)
	}
	unix.Setfsuid(u.UID)
	if id, _ := unix.SetfsuidRetUid(-1); id != u.UID {
		return fmt.Errorf("setfsuid(%d) did not take (fsuid is %d)", u.UID, id)
	}
	return nil
}
