package hosts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultPath is the system hosts file.
func DefaultPath() string {
	if runtime.GOOS == "windows" {
		return `C:\Windows\System32\drivers\etc\hosts`
	}
	return "/etc/hosts"
}

// LockPath is the lock file that serialises writers of path across
// processes (every kubefwd instance, and the privileged helper).
func LockPath(path string) string { return path + ".kubefwd.lock" }

// File writes one instance's block into a hosts file: under a lock shared
// with every other writer, reading the file afresh each time (it may have
// been replaced underneath us), replacing it atomically (temporary file in
// the same directory, fsync, rename, mode and owner kept) and falling back
// to rewriting it in place where rename is impossible (a bind-mounted
// file, as in containers). Writes that would change nothing are skipped.
type File struct {
	Path  string
	Block Block
	// AfterWrite, if set, runs after each write (macOS flushes its DNS
	// cache there).
	AfterWrite func()
}

// Apply makes the block hold exactly entries. It returns the names left out
// because the user's own lines map them.
func (f *File) Apply(entries []Entry) (skipped []Skipped, err error) {
	err = f.update(func(old []byte) []byte {
		var out []byte
		out, skipped = Render(old, f.Block, entries)
		return out
	})
	return skipped, err
}

// Remove takes the block out of the file.
func (f *File) Remove() error {
	return f.update(func(old []byte) []byte { return Remove(old, f.Block) })
}

// RemoveStale removes the blocks of owners that are no longer running (a
// crash, kill -9, a reboot) and returns them. Live instances' blocks stay.
func (f *File) RemoveStale() ([]Owner, error) {
	var gone []Owner
	err := f.update(func(old []byte) []byte {
		gone = nil
		out := old
		for id, owner := range Blocks(old) {
			if id == f.Block.ID {
				continue
			}
			o, ok := ParseOwner(owner)
			if !ok || o.Alive() {
				continue // not ours to judge, or still running
			}
			out = Remove(out, Block{ID: id})
			gone = append(gone, o)
		}
		return out
	})
	return gone, err
}

// update applies change to the file's content under the lock.
func (f *File) update(change func(old []byte) []byte) error {
	unlock, err := lock(f.Path)
	if err != nil {
		return fmt.Errorf("lock hosts file: %w", err)
	}
	defer unlock()
	old, err := os.ReadFile(f.Path)
	if err != nil {
		return fmt.Errorf("read hosts file: %w", err)
	}
	out := change(old)
	if bytes.Equal(old, out) {
		return nil
	}
	if err := writeFile(f.Path, out); err != nil {
		return fmt.Errorf("write hosts file %s: %w", f.Path, err)
	}
	if f.AfterWrite != nil {
		f.AfterWrite()
	}
	return nil
}

// writeFile replaces path with data atomically, keeping its mode and owner;
// where rename cannot replace it, it rewrites the file in place.
func writeFile(path string, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	err = replace(path, data, info)
	if err == nil {
		return nil
	}
	var inPlaceErr error
	if inPlaceErr = writeInPlace(path, data); inPlaceErr == nil {
		return nil
	}
	return errors.Join(err, inPlaceErr)
}

func replace(path string, data []byte, info fs.FileInfo) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".kubefwd-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	keepOwner(tmp, info)
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if isMountPoint(path) {
		// Renaming over a bind-mounted file fails (EBUSY) or, worse, could
		// succeed on the underlying file; rewrite the mounted one instead.
		return errors.New("the hosts file is a mount point")
	}
	return os.Rename(name, path)
}

// writeInPlace rewrites the file keeping its inode, mode and owner.
func writeInPlace(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Truncate(int64(len(data))); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// isMountPoint reports whether path itself is mounted over (Linux); false
// where unknown.
func isMountPoint(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescapeMount(fields[4]) == abs {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, ok := octal(s[i+1 : i+4]); ok {
				b.WriteByte(n)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + int(c-'0')
	}
	return byte(n), n < 256
}
