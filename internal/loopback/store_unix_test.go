//go:build unix

package loopback

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Run as root on behalf of a sudo user, the state file and its directory
// belong to that user, never to root.
func TestStoreOwnedByInvokingUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	dir := filepath.Join(t.TempDir(), "state", "kubefwd")
	s := Store{Path: filepath.Join(dir, "addresses.json"), Owner: &Owner{UID: 65534, GID: 65534}}
	if err := s.Save(map[string]Assignment{"a": {Addr: mustAddr("127.1.1.1")}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, s.Path} {
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
