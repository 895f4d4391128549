//go:build unix

package loopback

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/test/hostiletest"
	"github.com/kubefwd/kubefwd/test/needs"
)

// Run as root on behalf of a sudo user, the state file and its directory
// belong to that user, never to root.
func TestStoreOwnedByInvokingUser(t *testing.T) {
	needs.Root(t, "to give files away")
	home := userHome(t)
	dir := filepath.Join(home, "state", "kubefwd")
	s := Store{Path: filepath.Join(dir, "addresses.json"), User: nobody}
	if err := s.Save(map[string]Assignment{"a": {Addr: mustAddr("127.1.1.1")}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(dir), dir, s.Path} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s is owned by %d:%d, want 65534:65534", p, st.Uid, st.Gid)
		}
	}
}

var nobody = &asuser.User{UID: 65534, GID: 65534}

// userHome is a directory owned by nobody that nobody can reach, standing
// for the invoking user's home.
func userHome(t *testing.T) string {
	t.Helper()
	dir := hostiletest.Dir(t, 0o755)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The user's state directory is a symlink to a directory of root's (the
// issue's /etc case): root must neither write there nor give it away.
func TestHostileStateDirSymlink(t *testing.T) {
	needs.Root(t, "to give files to another user")
	home := userHome(t)
	target := t.TempDir() // root's, like /etc
	if err := os.Chmod(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".local", "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(home, ".local", "state", "kubefwd")); err != nil {
		t.Fatal(err)
	}
	s := Store{Path: filepath.Join(home, ".local", "state", "kubefwd", "addresses.json"), User: nobody}
	err := s.Save(map[string]Assignment{"a": {Addr: mustAddr("127.1.1.1")}})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("saving through a link into root's directory: %v, want permission denied", err)
	}
	entries, _ := os.ReadDir(target)
	info, _ := os.Stat(target)
	if len(entries) != 0 || info.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("root's directory was changed: %d entries, owner %d", len(entries), info.Sys().(*syscall.Stat_t).Uid)
	}
	// Reading a file of root's through a link the user planted fails too.
	secret := filepath.Join(target, "secret.json")
	if err := os.WriteFile(secret, []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, "addresses.json")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if _, err := (Store{Path: link, User: nobody}).Load(); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("loading root's file through the user's link: %v, want permission denied", err)
	}
}
