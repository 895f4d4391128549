package hosts

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
)

// DefaultPath is the system hosts file.
func DefaultPath() string {
	if runtime.GOOS == "windows" {
		return `C:\Windows\System32\drivers\etc\hosts`
	}
	return "/etc/hosts"
}

// File writes one instance's block into a hosts file.
//
// This is the plain writer: read, render, rewrite in place, skipping the
// write when nothing changed. The hardened writer (atomic replace, a lock
// across processes, stale-block cleanup) is tracked separately and plugs in
// behind the same methods.
type File struct {
	Path  string
	Block Block
}

// Apply makes the block hold exactly entries. It returns the names left out
// because the user's own lines map them.
func (f *File) Apply(entries []Entry) (skipped []string, err error) {
	old, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("read hosts file: %w", err)
	}
	out, skipped := Render(old, f.Block, entries)
	if bytes.Equal(old, out) {
		return skipped, nil
	}
	if err := writeInPlace(f.Path, out); err != nil {
		return skipped, fmt.Errorf("write hosts file %s: %w", f.Path, err)
	}
	return skipped, nil
}

// Remove takes the block out of the file.
func (f *File) Remove() error {
	_, err := f.Apply(nil)
	return err
}

// writeInPlace rewrites the file keeping its inode, mode and owner (a bind
// mounted file cannot be replaced by rename).
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
