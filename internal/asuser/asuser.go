// Package asuser runs file-system operations with another user's rights.
//
// kubefwd runs as root under sudo, yet most of the files it touches are the
// invoking user's: their state directory, their runtime directory and
// control socket, the files they name on the command line. Root following
// the user's symlinks, or reading a file the user names with root's
// rights, is a privilege escalation. So every such operation runs inside
// Do, with the user's file-system identity: the kernel then checks it as it
// would check the user, symlinks included, and what it creates is theirs.
//
// The identity is changed for one OS thread only (Linux: fsuid, fsgid and
// supplementary groups are per thread at the kernel level; macOS: the
// per-thread credential of settid), and that thread is thrown away after
// the operation, so no goroutine ever runs as root on a thread that was
// half switched back. Goroutines started inside fn do not inherit the
// identity: fn must do its file work itself.
package asuser

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// User is the identity file operations run with.
type User struct {
	UID, GID int
	Groups   []int // supplementary groups; without them root's own would apply
	Name     string
	Home     string
}

// Lookup returns uid's identity, with gid as its primary group and the
// supplementary groups the user database gives it.
func Lookup(uid, gid int) (*User, error) {
	u := &User{UID: uid, GID: gid}
	pw, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		// A uid without a passwd entry (containers, tests) still has an
		// identity: its uid and gid, and no other group.
		return u, nil
	}
	u.Name, u.Home = pw.Username, pw.HomeDir
	ids, err := pw.GroupIds()
	if err != nil {
		return u, nil
	}
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil && g != gid {
			u.Groups = append(u.Groups, g)
		}
	}
	return u, nil
}

// ErrUnsupported means this system cannot switch a thread's file-system
// identity, so operations for another user cannot be done safely.
var ErrUnsupported = errors.New("acting with another user's file rights is not supported on this system")

// Do runs fn with u's file-system rights and returns its error. A nil u
// runs fn as the process is.
func (u *User) Do(fn func() error) error {
	if u == nil {
		return fn()
	}
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		returned := false
		defer func() {
			// fn panicked or called runtime.Goexit: the caller hears of it
			// rather than waiting forever.
			if !returned {
				r := recover()
				if r == nil {
					r = "asuser: the operation exited its goroutine"
				}
				done <- result{panicked: r}
			}
		}()
		// The thread is never unlocked: when this goroutine returns the
		// runtime ends the thread with it, identity and all.
		lockThread()
		var err error
		if err = u.become(); err != nil {
			err = fmt.Errorf("cannot act as %s: %w", u, err)
		} else {
			err = fn()
		}
		returned = true
		done <- result{err: err}
	}()
	r := <-done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// String names the user for messages.
func (u *User) String() string {
	if u == nil {
		return "the current user"
	}
	if u.Name != "" {
		return fmt.Sprintf("%s (uid %d)", u.Name, u.UID)
	}
	return "uid " + strconv.Itoa(u.UID)
}
