package hosts

import (
	"bytes"
	"fmt"
	"os"
	"runtime"

	"github.com/kubefwd/kubefwd/internal/atomicfile"
)

// DefaultPath is the system hosts file.
func DefaultPath() string {
	if runtime.GOOS == "windows" {
		return `C:\Windows\System32\drivers\etc\hosts`
	}
	return "/etc/hosts"
}

// LockPath is the lock file that serialises writers of path on Windows.
// Elsewhere writers lock the directory holding path (see lock_unix.go), and
// no lock file is needed.
func LockPath(path string) string { return path + ".kubefwd.lock" }

// File writes one instance's block into a hosts file: under a lock shared
// with every other writer, reading the file afresh each time (it may have
// been replaced underneath us), and writing it with atomicfile (replaced
// by rename where that keeps everything the system attached to it: mode,
// owner, extended attributes; rewritten in place elsewhere; a symlink's
// target written, the link kept). Writes that would change nothing are
// skipped.
type File struct {
	Path  string
	Block Block
	// AfterWrite, if set, runs after each write (macOS flushes its DNS
	// cache there).
	AfterWrite func()
	// OnUserLines, if set, receives the lines found inside a kubefwd block
	// that kubefwd did not write (a comment, another address, …), after a
	// write that kept them, moved out of the block, in the file. Callers
	// log them: someone edited the block.
	OnUserLines func(lines []string)
}

// Apply makes the block hold exactly entries. It returns the names left out:
// those the user's own lines map, and those that are not valid DNS names or
// whose address is not in 127.0.0.0/8 (each with its reason).
func (f *File) Apply(entries []Entry) (skipped []Skipped, err error) {
	err = f.update(func(old []byte) ([]byte, []string) {
		var out []byte
		var user []string
		out, skipped, user = render(old, f.Block, entries)
		return out, user
	})
	return skipped, err
}

// Remove takes the block out of the file.
func (f *File) Remove() error {
	return f.update(func(old []byte) ([]byte, []string) { return strip(old, f.Block.ID) })
}

// RemoveStale removes the blocks of owners that are no longer running (a
// crash, kill -9, a reboot) and returns them. Live instances' blocks stay.
func (f *File) RemoveStale() ([]Owner, error) {
	var gone []Owner
	err := f.update(func(old []byte) ([]byte, []string) {
		gone = nil
		out := old
		var user []string
		for id, owner := range Blocks(old) {
			if id == f.Block.ID {
				continue
			}
			o, ok := ParseOwner(owner)
			if !ok || o.Alive() {
				continue // not ours to judge, or still running
			}
			var kept []string
			out, kept = strip(out, id)
			user = append(user, kept...)
			gone = append(gone, o)
		}
		return out, user
	})
	return gone, err
}

// update applies change to the file's content under the lock.
func (f *File) update(change func(old []byte) (out []byte, user []string)) error {
	unlock, err := lock(f.Path)
	if err != nil {
		return fmt.Errorf("write hosts file %s: %w", f.Path, err)
	}
	defer unlock()
	old, err := os.ReadFile(f.Path)
	if err != nil {
		return fmt.Errorf("read hosts file: %w", err)
	}
	out, user := change(old)
	if bytes.Equal(old, out) {
		return nil
	}
	// perm matters only for a file that vanished since we read it.
	if err := atomicfile.WriteFile(f.Path, out, 0o644); err != nil {
		return fmt.Errorf("write hosts file %s: %w", f.Path, err)
	}
	if f.AfterWrite != nil {
		f.AfterWrite()
	}
	if len(user) > 0 && f.OnUserLines != nil {
		f.OnUserLines(user)
	}
	return nil
}
