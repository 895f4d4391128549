//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

const noFollow = syscall.O_NOFOLLOW

// copyMeta gives tmp the owner, group, mode and extended attributes of the
// file at target, all through descriptors. Anything it cannot give makes
// the caller rewrite target in place instead, which keeps all of it.
func copyMeta(tmp *os.File, target string, _ fs.FileInfo) error {
	src, err := os.OpenFile(target, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return &inPlace{err}
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return &inPlace{errors.New("unknown file owner")}
	}
	if st.Nlink > 1 {
		// Rename would give this name a new file and leave the other
		// names with the old content.
		return &inPlace{fmt.Errorf("%s has %d hard links", target, st.Nlink)}
	}
	// Owner first: chown clears set-user-ID bits, which Chmod then restores.
	if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return &inPlace{fmt.Errorf("cannot give the new file the owner %d:%d: %w", st.Uid, st.Gid, err)}
	}
	if err := tmp.Chmod(info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		return &inPlace{err}
	}
	// Attributes last: a POSIX ACL encodes the mode's group bits too, and
	// copying it after Chmod leaves both exactly as they were.
	if err := copyXattrs(tmp, src); err != nil {
		return &inPlace{err}
	}
	return nil
}

// canRewrite reports whether a temporary file could not be created for a
// reason that still lets the file itself be written: a directory we may not
// write, or one mounted read-only around a writable file.
func canRewrite(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
