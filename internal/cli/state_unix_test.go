//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/loopback"
	"github.com/kubefwd/kubefwd/test/needs"
)

// Run as root under sudo, kubefwd keeps its state in the invoking user's
// home (from the user database, not root's or the user's environment),
// owned by that user, never by root.
func TestStateFileOwnedBySudoUser(t *testing.T) {
	needs.Root(t, "to give files to another user")
	home := t.TempDir()
	os.Chmod(filepath.Dir(home), 0o755)
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"XDG_STATE_HOME": "/root/.local/state"}
	u := &asuser.User{UID: 65534, GID: 65534, Home: home}
	path := stateFileFor(u, func(k string) string { return env[k] }, func() (string, error) { return "/root", nil })
	if !strings.HasPrefix(path, home) {
		t.Fatalf("state file %s is not in the sudo user's home", path)
	}
	if err := (loopback.Store{Path: path, User: u}).Save(map[string]loopback.Assignment{}); err != nil {
		t.Fatal(err)
	}
	for p := path; p != home; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != 65534 {
			t.Errorf("%s is owned by uid %d, want 65534", p, st.Uid)
		}
	}
}

func TestStateFileWithoutSudo(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": "/x/state"}
	path := stateFileFor(nil, func(k string) string { return env[k] }, nil)
	if path != "/x/state/kubefwd/addresses.json" {
		t.Errorf("got %s", path)
	}
}
