//go:build unix

package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kubefwd/kubefwd/internal/loopback"
)

// Run as root under sudo, kubefwd keeps its state in the invoking user's
// home, owned by that user, never by root.
func TestStateFileOwnedBySudoUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	home := t.TempDir()
	env := map[string]string{"SUDO_UID": "65534", "SUDO_GID": "65534", "XDG_STATE_HOME": "/root/.local/state"}
	lookup := func(uid string) (*user.User, error) {
		return &user.User{Uid: uid, Gid: "65534", Username: "someone", HomeDir: home}, nil
	}
	path, owner := stateFileFor(0, func(k string) string { return env[k] }, lookup, func() (string, error) { return "/root", nil })
	if !strings.HasPrefix(path, home) || owner == nil {
		t.Fatalf("state file %s (owner %v) is not the sudo user's", path, owner)
	}
	if err := (loopback.Store{Path: path, Owner: owner}).Save(map[string]loopback.Assignment{}); err != nil {
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
	path, owner := stateFileFor(1000, func(k string) string { return env[k] }, nil, nil)
	if path != "/x/state/kubefwd/addresses.json" || owner != nil {
		t.Errorf("got %s, %v", path, owner)
	}
}
