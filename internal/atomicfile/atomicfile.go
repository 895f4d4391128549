// Package atomicfile replaces a file's content so that readers see either
// the old content or the new, never a mix, while the file keeps what the
// system attaches to it: mode, owner, group and extended attributes (an
// SELinux label, POSIX ACLs, user.* attributes).
//
// The new content goes to a temporary file in the same directory, which is
// written, synced, given the old file's metadata through its descriptor and
// renamed over the old one. Where that is impossible or would lose
// something, the file is rewritten in place instead (same inode, so every
// attribute stays, at the cost of atomicity for readers): a file that is
// itself a mount point (a bind-mounted /etc/hosts in containers and in the
// helper's systemd sandbox), a directory where no file can be created (read
// only, or not ours) holding a file we may write, a rename the kernel
// refuses (EBUSY, EXDEV), a file with other hard links (they would keep
// the old content), an owner or an extended attribute the new file cannot
// be given.
//
// Trust: a symlink at the path is followed and its target replaced, and the
// directory holding the target is trusted not to change under us. Callers
// running as root must therefore pass only paths that root controls; a path
// a user controls is written by code running with that user's file-system
// rights (package asuser), so the kernel checks what it follows as it would
// check the user.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces the content of path with data, atomically where the file system allows.
//
// An existing file keeps its mode, owner, group and extended attributes. A
// symlink is resolved and its final target written; the link stays. A new
// file is created with perm, less the process's umask (as os.WriteFile).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	target, err := resolve(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return create(target, data, perm)
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", target)
	}
	if isMountPoint(target) {
		// Rename over a mounted file fails (EBUSY) or, worse, replaces the
		// file underneath the mount, which nobody would then see.
		return rewrite(target, data)
	}
	err = replace(target, data, info)
	if err == nil {
		return nil
	}
	var fallback *inPlace
	if !errors.As(err, &fallback) {
		return err
	}
	if rerr := rewrite(target, data); rerr != nil {
		return fmt.Errorf("%w; rewriting it in place failed too: %w", fallback.err, rerr)
	}
	return nil
}

// inPlace means the file cannot be replaced by rename without losing
// something, so it is rewritten in place.
type inPlace struct{ err error }

func (e *inPlace) Error() string { return e.err.Error() }
func (e *inPlace) Unwrap() error { return e.err }

// maxLinks bounds symlink chains, as the kernel does (ELOOP after 40).
const maxLinks = 40

// resolve follows symlinks at the last component of path, so that the file
// actually holding the content is replaced and the link stays a link.
// Symlinked directories on the way need nothing: the kernel follows them
// and the temporary file lands in the same physical directory.
func resolve(path string) (string, error) {
	for range maxLinks {
		info, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil // a new file, or a dangling link's target
		}
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		link, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(path), link)
		}
		path = link
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// create writes a new file by way of a temporary one, so that the file
// appears complete or not at all.
func create(target string, data []byte, perm fs.FileMode) error {
	tmp, err := tempFile(target, perm)
	if err != nil {
		return err
	}
	return commit(tmp, target, data, func(*os.File) error { return nil })
}

// replace writes data to a temporary file carrying info's metadata and
// renames it over target. It returns an *inPlace error where target must be
// rewritten in place instead.
func replace(target string, data []byte, info fs.FileInfo) error {
	tmp, err := tempFile(target, 0o600)
	if err != nil {
		if canRewrite(err) {
			return &inPlace{err}
		}
		return err
	}
	return commit(tmp, target, data, func(f *os.File) error {
		return copyMeta(f, target, info)
	})
}

// commit writes data to tmp, lets meta set its metadata, syncs it, renames
// it over target and syncs the directory. tmp is removed on every failure.
func commit(tmp *os.File, target string, data []byte, meta func(*os.File) error) error {
	name := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := meta(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, target); err != nil {
		// EBUSY (a mount point we did not recognise), EXDEV, a file
		// system that refuses rename over this file: the file itself may
		// still be writable.
		os.Remove(name)
		done = true
		return &inPlace{err}
	}
	done = true
	// The rename is durable only once the directory is; the content is
	// already in place, so a failure here is not the caller's problem.
	_ = syncDir(filepath.Dir(target))
	return nil
}

// tempFile creates a file next to target with an unpredictable name,
// exclusively, so that nobody can have prepared it (a link, a file of
// theirs) in a directory others may write.
func tempFile(target string, perm fs.FileMode) (*os.File, error) {
	dir, base := filepath.Split(target)
	for range 10 {
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(r[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("cannot create a temporary file next to %s", target)
}

// rewrite writes data over target's content, keeping its inode and with it
// every attribute. Readers may see a partly written file meanwhile.
func rewrite(target string, data []byte) error {
	f, err := os.OpenFile(target, os.O_WRONLY|noFollow, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
