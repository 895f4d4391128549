package hosts

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The test binary doubles as a helper process: a separate writer for the
// concurrency test, a writer inside a private mount namespace, and a writer
// without privileges.
const helperEnv = "KUBEFWD_HOSTS_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[len(os.Args)-2], os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// helper runs one writer: mode "write" applies 10 times with block id,
// "bind" bind-mounts a copy over path first (it runs under unshare -m).
func helper(mode, path, id string) int {
	if mode == "bind" {
		src := path + ".src"
		if err := syscall.Mount(src, path, "", syscall.MS_BIND, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount:", err)
			return 3
		}
	}
	f := &File{Path: path, Block: Block{ID: id, Owner: Self().String()}}
	for i := range 10 {
		addr := netip.AddrFrom4([4]byte{127, 1, 1, byte(i + 1)})
		if _, err := f.Apply([]Entry{{Addr: addr, Names: []string{"svc-" + id}}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func helperCmd(t *testing.T, mode, path, id string, wrap ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(wrap, self, "-test.run=^$", path, id)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

func writeHosts(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileKeepsModeAndOwner(t *testing.T) {
	path := writeHosts(t, "127.0.0.1 localhost\n", 0o640)
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(path)
	f := &File{Path: path, Block: blk}
	if _, err := f.Apply(entries("127.1.27.1", "web")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if after.Mode() != before.Mode() {
		t.Errorf("mode %v became %v", before.Mode(), after.Mode())
	}
	if os.Geteuid() == 0 {
		st := after.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("owner became %d:%d", st.Uid, st.Gid)
		}
	}
	if os.SameFile(before, after) {
		t.Error("the file was rewritten in place; want an atomic replace")
	}
	// Nothing left behind next to it but the lock.
	entriesIn, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entriesIn {
		if e.Name() != "hosts" && e.Name() != filepath.Base(LockPath(path)) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// Someone (an editor, another tool) replaces the file between our writes:
// their content is what we build on.
func TestFileReplacedUnderneath(t *testing.T) {
	path := writeHosts(t, "127.0.0.1 localhost\n", 0o644)
	f := &File{Path: path, Block: blk}
	if _, err := f.Apply(entries("127.1.27.1", "web")); err != nil {
		t.Fatal(err)
	}
	edited, _ := os.ReadFile(path)
	edited = append([]byte("10.9.9.9 added-by-user\n"), edited...)
	tmp := path + ".editor"
	if err := os.WriteFile(tmp, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(entries("127.1.27.2", "api")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "10.9.9.9 added-by-user\n127.0.0.1 localhost\n# kubefwd begin a1b2 pid=42\n127.1.27.2 api\n# kubefwd end a1b2\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// A bind-mounted hosts file (containers, our own tests) cannot be replaced
// by rename; it is rewritten in place.
func TestFileBindMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -m")
	}
	path := writeHosts(t, "", 0o644)
	if err := os.WriteFile(path+".src", []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := helperCmd(t, "bind", path, "bound", "unshare", "-m", "--propagation", "private").CombinedOutput()
	if err != nil {
		t.Fatalf("writer in a private mount namespace: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(path + ".src")
	if !strings.Contains(string(got), "127.1.1.10 svc-bound") || !strings.HasPrefix(string(got), "127.0.0.1 localhost\n") {
		t.Errorf("the mounted file was not written in place:\n%s", got)
	}
}

// 20 writers in separate processes, each updating its own block ten times,
// leave one intact block each and the user's line untouched.
func TestFileConcurrentWriters(t *testing.T) {
	path := writeHosts(t, "127.0.0.1 localhost\n# mine\n", 0o644)
	var cmds []*exec.Cmd
	for i := range 20 {
		cmd := helperCmd(t, "write", path, "w"+strconv.Itoa(i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), "127.0.0.1 localhost\n# mine\n") {
		t.Errorf("user lines changed:\n%s", got)
	}
	blocks := Blocks(got)
	for i := range 20 {
		id := "w" + strconv.Itoa(i)
		if _, ok := blocks[id]; !ok {
			t.Errorf("block %s missing", id)
		}
		if n := strings.Count(string(got), "svc-"+id+"\n"); n != 1 {
			t.Errorf("block %s has %d entries, want 1", id, n)
		}
	}
}

// Without permission to write, nothing changes and the error says why.
func TestFileReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a writer as nobody")
	}
	// t.TempDir's parents are closed to other users; nobody must reach
	// the helper binary.
	dir, err := os.MkdirTemp("", "kubefwd-hosts-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test binary may sit in a directory nobody cannot enter.
	self, _ := os.Executable()
	bin := filepath.Join(dir, "helper")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("runuser", "-u", "nobody", "--", bin, "-test.run=^$", path, "ro")
	cmd.Env = append(os.Environ(), helperEnv+"=write")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("an unprivileged writer succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "write hosts file") || !strings.Contains(string(out), "permission denied") {
		t.Errorf("error does not say why: %s", out)
	}
	if got, _ := os.ReadFile(path); string(got) != "127.0.0.1 localhost\n" {
		t.Errorf("file changed:\n%s", got)
	}
}

func TestRemoveStale(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadOwner := Owner{PID: dead.Process.Pid}
	self := Self()
	reused := Owner{PID: self.PID, Start: "1"} // our PID, another start time
	content := "127.0.0.1 localhost\n" +
		"# kubefwd begin dead " + deadOwner.String() + "\n127.9.0.1 a\n# kubefwd end dead\n" +
		"# kubefwd begin live " + self.String() + "\n127.9.0.2 b\n# kubefwd end live\n" +
		"# kubefwd begin reused " + reused.String() + "\n127.9.0.3 c\n# kubefwd end reused\n"
	path := writeHosts(t, content, 0o644)
	f := &File{Path: path, Block: Block{ID: "me", Owner: self.String()}}
	gone, err := f.RemoveStale()
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 {
		t.Errorf("removed %v, want the dead and the reused-PID owners", gone)
	}
	want := "127.0.0.1 localhost\n# kubefwd begin live " + self.String() + "\n127.9.0.2 b\n# kubefwd end live\n"
	if got, _ := os.ReadFile(path); string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseOwner(t *testing.T) {
	for in, want := range map[string]Owner{
		"pid=42":                {PID: 42},
		"pid=42 start=12345":    {PID: 42, Start: "12345"},
		"start=9 pid=7 extra=x": {PID: 7, Start: "9"},
		"pid=0":                 {},
		"pid=x":                 {},
		"":                      {},
	} {
		got, ok := ParseOwner(in)
		if got != want || ok != (want.PID > 0) {
			t.Errorf("ParseOwner(%q) = %+v, %v", in, got, ok)
		}
	}
}
