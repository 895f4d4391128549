// Package hostiletest holds what the hostile-local-user tests of several
// packages share: root plays the invoking user (nobody) and other users,
// in directories those users can reach.
package hostiletest

import (
	"io/fs"
	"os"
	"testing"

	"github.com/kubefwd/kubefwd/test/needs"
)

// NeedRoot skips t unless it runs as root: only root can play other users.
func NeedRoot(t testing.TB) {
	t.Helper()
	needs.Root(t, "to play another user")
}

// Dir is a new directory with mode that other users can reach (the parent
// of t.TempDir is root's alone), removed when t ends.
func Dir(t testing.TB, mode fs.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubefwd-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Chmod, not MkdirTemp's mode: the umask must not narrow it.
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}
