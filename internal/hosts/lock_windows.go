package hosts

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// lock creates the lock file next to target exclusively, waiting while
// another writer holds it. A lock file older than a minute is left from a
// crash and taken over.
func lock(target string) (func(), error) {
	path := LockPath(target)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if info, err := os.Stat(path); err == nil && time.Since(info.ModTime()) > time.Minute {
			_ = os.Remove(path)
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
}
