//go:build linux

package asuser

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/kubefwd/kubefwd/test/hostiletest"
)

// nobody stands for the invoking user of a sudo run.
var nobody = &User{UID: 65534, GID: 65534}

// A file only root may read stays unreadable inside Do, by the owner's
// bits and by root's group alike (root's supplementary groups are dropped),
// also through a symlink the user planted.
func TestHostileReadsAsTheUser(t *testing.T) {
	hostiletest.NeedRoot(t)
	dir := hostiletest.Dir(t, 0o755)
	secret := filepath.Join(dir, "secret")
	groupSecret := filepath.Join(dir, "group-secret")
	for path, mode := range map[string]fs.FileMode{secret: 0o600, groupSecret: 0o640} {
		if err := os.WriteFile(path, []byte("root only\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "innocent")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{secret, groupSecret, link} {
		err := nobody.Do(func() error { _, err := os.ReadFile(path); return err })
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("reading %s as nobody: %v, want permission denied", path, err)
		}
	}
	// The caller is root again afterwards, on whatever thread it runs.
	if _, err := os.ReadFile(secret); err != nil {
		t.Errorf("after Do the caller lost root's rights: %v", err)
	}
}

// What Do creates belongs to the user, without any chown.
func TestCreatesAsTheUser(t *testing.T) {
	hostiletest.NeedRoot(t)
	dir := hostiletest.Dir(t, 0o777)
	path := filepath.Join(dir, "d", "f")
	err := nobody.Do(func() error {
		if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		return os.WriteFile(path, nil, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s is owned by %d:%d, want 65534:65534", p, st.Uid, st.Gid)
		}
	}
	// Root-owned directories stay closed to the user.
	private := t.TempDir()
	err = nobody.Do(func() error { return os.WriteFile(filepath.Join(private, "x"), nil, 0o600) })
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("writing into root's private directory as nobody: %v, want permission denied", err)
	}
}

// Many operations at once, for different users and for root, never see
// each other's identity.
func TestConcurrentIdentities(t *testing.T) {
	hostiletest.NeedRoot(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := 0; i < 100; i++ {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if err := nobody.Do(func() error { _, err := os.ReadFile(secret); return err }); !errors.Is(err, fs.ErrPermission) {
				errs <- errors.New("nobody could read root's file")
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := os.ReadFile(secret); err != nil {
				errs <- errors.New("root could not read its file while another goroutine acted as nobody")
			}
		}()
		go func() {
			defer wg.Done()
			var nilUser *User
			if err := nilUser.Do(func() error { _, err := os.ReadFile(secret); return err }); err != nil {
				errs <- errors.New("a nil user is not the process itself")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestPanicReachesTheCaller(t *testing.T) {
	hostiletest.NeedRoot(t)
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want the operation's panic", r)
		}
	}()
	_ = nobody.Do(func() error { panic("boom") })
}

func TestLookupWithoutPasswdEntry(t *testing.T) {
	u, err := Lookup(4242424, 4242424)
	if err != nil || u.UID != 4242424 || u.GID != 4242424 || len(u.Groups) != 0 {
		t.Fatalf("Lookup = %+v, %v", u, err)
	}
}
