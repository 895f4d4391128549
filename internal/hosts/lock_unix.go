//go:build unix

package hosts

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lock takes an exclusive flock on the lock file next to target (created if
// needed). The kernel releases it if we die, so a crash never blocks other
// writers. Where the lock file cannot be created (a writable file in a
// directory we may not write), it locks target itself, which serialises
// writers that rewrite it in place. The same goes for a read-only
// directory (the helper's systemd sandbox, when the lock file is missing).
func lock(target string) (func(), error) {
	f, err := os.OpenFile(LockPath(target), os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		f, err = os.Open(target)
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// keepOwner gives the new file the old one's owner and group.
func keepOwner(f *os.File, info fs.FileInfo) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
