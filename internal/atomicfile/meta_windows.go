package atomicfile

import (
	"errors"
	"io/fs"
	"os"
)

const noFollow = 0

// copyMeta: a new Windows file inherits its directory's ACL, which is what
// the system hosts file has; only the read-only attribute is a mode.
func copyMeta(tmp *os.File, _ string, info fs.FileInfo) error {
	return tmp.Chmod(info.Mode().Perm())
}

// canRewrite reports whether the temporary file could not be created for
// a reason that still lets the file itself be written.
func canRewrite(err error) bool { return errors.Is(err, fs.ErrPermission) }

// syncDir: Windows cannot open a directory to sync it; NTFS journals the
// rename itself.
func syncDir(string) error { return nil }
