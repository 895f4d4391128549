//go:build !unix

package control

import (
	"fmt"
	"io/fs"
	"os"
)

// privateDir makes sure dir exists and is a directory (there is no sudo
// here, so the directory is the running user's own).
func privateDir(dir string, _ int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	return nil
}

func ownSocket(p string, _ int) bool {
	info, err := os.Lstat(p)
	return err == nil && info.Mode().Type() == fs.ModeSocket
}
