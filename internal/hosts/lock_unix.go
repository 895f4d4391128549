//go:build unix

package hosts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockWait bounds the wait for the lock. flock needs only a descriptor,
// so any local user who can open the directory (everyone, for /etc) can
// hold the lock; a writer then fails with a clear error instead of hanging
// for ever, and its caller tries again later.
const lockWait = 30 * time.Second

// lock takes an exclusive flock on the directory holding target: one lock
// for every writer whatever the file system allows. Opening a directory
// needs no file to be created, works in a read-only directory (the
// helper's systemd sandbox makes /etc read-only), and the directory's lock
// survives the file being replaced by rename, which a lock on the file
// itself would not. flock locks belong to the inode, so the helper's
// bind-mounted view of /etc shares the lock with writers outside its
// sandbox. The kernel releases it when the holder dies, so a crash never
// blocks other writers. Writers that name the same path (the system hosts
// file, or one --hosts-path) share the lock.
func lock(target string) (func(), error) { return lockWithin(target, lockWait) }

func lockWithin(target string, wait time.Duration) (func(), error) {
	dir := filepath.Dir(target)
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s to lock it: %w", dir, err)
	}
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			d.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			holders := lockHolders(d)
			d.Close()
			who := "another process"
			if len(holders) > 0 {
				who = fmt.Sprintf("process %d", holders[0])
			}
			return nil, fmt.Errorf("%s has held the lock on %s (a flock that every hosts file writer takes) for %s", who, dir, wait)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		_ = d.Close()
	}, nil
}
