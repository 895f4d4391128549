package atomicfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kubefwd/kubefwd/test/hostiletest"
	"github.com/kubefwd/kubefwd/test/needs"
)

// The test binary doubles as a writer in another process: as another user
// (runuser) or inside a private mount namespace (unshare -m).
const writerEnv = "KUBEFWD_ATOMICFILE_WRITER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(writerEnv); mode != "" {
		os.Exit(writer(mode, os.Args[len(os.Args)-2], os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// writer writes content to path; mode "bind" first bind-mounts path+".src"
// over path, "rodir" also makes the directory read-only around it (the
// helper's systemd sandbox: ProtectSystem=strict, ReadWritePaths=/etc/hosts).
func writer(mode, path, content string) int {
	if mode == "bind" || mode == "rodir" {
		if err := unix.Mount(path+".src", path, "", unix.MS_BIND, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount:", err)
			return 3
		}
	}
	if mode == "rodir" {
		dir := filepath.Dir(path)
		if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount:", err)
			return 3
		}
		if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			fmt.Fprintln(os.Stderr, "remount:", err)
			return 3
		}
		// The file's own mount, copied by MS_REC, stays writable.
	}
	if err := WriteFile(path, []byte(content), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runWriter runs a writer process, wrapped by wrap (runuser, unshare), from
// a copy of the test binary that any user may run.
func runWriter(t *testing.T, mode, path, content string, wrap ...string) ([]byte, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(publicDir(t), "writer")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append(wrap, bin, "-test.run=^$", path, content)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), writerEnv+"="+mode)
	return cmd.CombinedOutput()
}

// publicDir is a directory other users can enter (t.TempDir's parents may
// not be).
func publicDir(t *testing.T) string { return hostiletest.Dir(t, 0o755) }

const nobody = 65534

// acl encodes a POSIX ACL as the kernel's system.posix_acl_* value.
func acl(entries ...[3]uint32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(2))
	for _, e := range entries {
		binary.Write(&b, binary.LittleEndian, uint16(e[0]))
		binary.Write(&b, binary.LittleEndian, uint16(e[1]))
		binary.Write(&b, binary.LittleEndian, e[2])
	}
	return b.Bytes()
}

const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclMask     = 0x10
	aclOther    = 0x20
	noID        = 0xffffffff
)

// rw- for the owner and for uid 4321, r-- for the group, nothing for others.
var userACL = acl(
	[3]uint32{aclUserObj, 6, noID},
	[3]uint32{aclUser, 6, 4321},
	[3]uint32{aclGroupObj, 4, noID},
	[3]uint32{aclMask, 6, noID},
	[3]uint32{aclOther, 0, noID},
)

func xattrs(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := listXattrs(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		v, err := getXattr(f, n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(v)
	}
	return out
}

func setXattr(t *testing.T, path, name string, value []byte) {
	t.Helper()
	if err := unix.Setxattr(path, name, value, 0); err != nil {
		t.Fatalf("setxattr %s on %s: %v", name, path, err)
	}
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t)
}

// Replaced by rename, the file keeps its mode, owner, group, a user.*
// attribute and a POSIX ACL (the same mechanism carries SELinux labels).
func TestWriteFileKeepsMetadata(t *testing.T) {
	hostiletest.NeedRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	mustWrite(t, path, "old\n")
	if err := os.Chown(path, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	setXattr(t, path, "user.kubefwd-test", []byte("kept"))
	setXattr(t, path, "system.posix_acl_access", userACL)
	before, wantAttrs := stat(t, path), xattrs(t, path)
	if err := WriteFile(path, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	after, gotAttrs := stat(t, path), xattrs(t, path)
	if read(t, path) != "new\n" {
		t.Errorf("content %q", read(t, path))
	}
	if after.Ino == before.Ino {
		t.Error("rewritten in place; want an atomic replace")
	}
	if after.Mode != before.Mode || after.Uid != before.Uid || after.Gid != before.Gid {
		t.Errorf("mode/owner %o %d:%d became %o %d:%d", before.Mode, before.Uid, before.Gid, after.Mode, after.Uid, after.Gid)
	}
	if fmt.Sprint(gotAttrs) != fmt.Sprint(wantAttrs) {
		t.Errorf("extended attributes %q became %q", wantAttrs, gotAttrs)
	}
	noLeftovers(t, dir, "hosts")
}

// A directory's default ACL gives the temporary file an access ACL the old
// file did not have; the new file must not keep it.
func TestWriteFileDropsInheritedACL(t *testing.T) {
	hostiletest.NeedRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	mustWrite(t, path, "old\n")
	setXattr(t, dir, "system.posix_acl_default", acl(
		[3]uint32{aclUserObj, 7, noID},
		[3]uint32{aclUser, 7, 4321},
		[3]uint32{aclGroupObj, 5, noID},
		[3]uint32{aclMask, 7, noID},
		[3]uint32{aclOther, 5, noID},
	))
	if err := WriteFile(path, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := xattrs(t, path); len(got) != 0 {
		t.Errorf("the new file has attributes the old one had not: %q", got)
	}
	if got := stat(t, path).Mode & 0o777; got != 0o644 {
		t.Errorf("mode %o, want 644", got)
	}
}

func TestWriteFileNewFileUmask(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	path := filepath.Join(dir, "state.json")
	if err := WriteFile(path, []byte("{}"), 0o666); err != nil {
		t.Fatal(err)
	}
	if got := stat(t, path).Mode & 0o777; got != 0o640 {
		t.Errorf("mode %o, want 666 less umask 027 = 640", got)
	}
}

// Where rename cannot or must not replace the file, it is rewritten in
// place: same inode, owner and attributes, new content.
func TestWriteFileInPlace(t *testing.T) {
	hostiletest.NeedRoot(t)
	for _, tc := range []struct {
		name string
		// setup prepares dir and the file; it returns the file's path.
		setup func(t *testing.T, dir string) string
		wrap  []string
		mode  string
	}{
		{"file with another hard link", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "hosts")
			mustWrite(t, path, "old\n")
			if err := os.Link(path, filepath.Join(dir, "other-name")); err != nil {
				t.Fatal(err)
			}
			return path
		}, nil, "write"},
		{"bind-mounted file", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "hosts")
			mustWrite(t, path, "")
			mustWrite(t, path+".src", "old\n")
			return path + ".src"
		}, []string{"unshare", "-m", "--propagation", "private"}, "bind"},
		{"read-only directory around a writable bind-mounted file", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "hosts")
			mustWrite(t, path, "")
			mustWrite(t, path+".src", "old\n")
			return path + ".src"
		}, []string{"unshare", "-m", "--propagation", "private"}, "rodir"},
		{"directory the writer may not write", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "hosts")
			mustWrite(t, path, "old\n")
			if err := os.Chown(path, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return path
		}, []string{"runuser", "-u", "nobody", "--"}, "write"},
		{"owner the writer cannot give", func(t *testing.T, dir string) string {
			// A file of root's that nobody may write, in a directory
			// nobody may write: a new file would be nobody's.
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "hosts")
			mustWrite(t, path, "old\n")
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
			return path
		}, []string{"runuser", "-u", "nobody", "--"}, "write"},
		{"attribute the writer cannot set", func(t *testing.T, dir string) string {
			// security.* attributes other than SELinux's need
			// CAP_SYS_ADMIN to set, yet anyone may read them.
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "hosts")
			mustWrite(t, path, "old\n")
			if err := os.Chown(path, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			setXattr(t, path, "security.kubefwd-test", []byte("kept"))
			return path
		}, []string{"runuser", "-u", "nobody", "--"}, "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := publicDir(t)
			file := tc.setup(t, dir)
			before, attrs := stat(t, file), xattrs(t, file)
			path := file
			if tc.mode != "write" {
				path = strings.TrimSuffix(file, ".src")
			}
			out, err := runWriter(t, tc.mode, path, "new\n", tc.wrap...)
			if err != nil {
				t.Fatalf("writer: %v\n%s", err, out)
			}
			after := stat(t, file)
			if got := read(t, file); got != "new\n" {
				t.Errorf("content %q", got)
			}
			if after.Ino != before.Ino || after.Uid != before.Uid || after.Mode != before.Mode {
				t.Errorf("inode/owner/mode %d %d %o became %d %d %o; want it rewritten in place",
					before.Ino, before.Uid, before.Mode, after.Ino, after.Uid, after.Mode)
			}
			if got := xattrs(t, file); fmt.Sprint(got) != fmt.Sprint(attrs) {
				t.Errorf("extended attributes %q became %q", attrs, got)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file left: %s", e.Name())
				}
			}
		})
	}
}

// When neither rename nor an in-place rewrite can change the file (it is
// immutable), the error says so, the file is unchanged and no temporary
// file is left.
func TestWriteFileFailsClean(t *testing.T) {
	hostiletest.NeedRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	mustWrite(t, path, "old\n")
	setFlags(t, path, fsImmutable)
	defer setFlags(t, path, 0)
	err := WriteFile(path, []byte("new\n"), 0o644)
	if err == nil {
		t.Fatal("an immutable file was written")
	}
	if !strings.Contains(err.Error(), "operation not permitted") || !strings.Contains(err.Error(), "in place") {
		t.Errorf("error does not say what failed: %v", err)
	}
	if got := read(t, path); got != "old\n" {
		t.Errorf("content %q", got)
	}
	noLeftovers(t, dir, "hosts")
}

func setFlags(t *testing.T, path string, flags int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags); err != nil {
		needs.Skip(t, "the file system has no immutable flag: %v", err)
	}
}

// fsImmutable is FS_IMMUTABLE_FL from linux/fs.h (chattr +i).
const fsImmutable = 0x10
