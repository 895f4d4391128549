package hosts

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubefwd/kubefwd/test/needs"
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
	if mode == "hold" {
		// A hostile local user: hold the writers' lock until stdin closes.
		d, err := os.Open(filepath.Dir(path))
		if err == nil {
			err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "lock:", err)
			return 1
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	}
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
	want := "10.9.9.9 added-by-user\n127.0.0.1 localhost\n# kubefwd begin a1b2 pid=42 " + tallyOf([]string{"127.1.27.2 api"}).String() + "\n127.1.27.2 api\n# kubefwd end a1b2\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// A bind-mounted hosts file (containers, our own tests) cannot be replaced
// by rename; it is rewritten in place.
func TestFileBindMounted(t *testing.T) {
	needs.Root(t, "for unshare -m")
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
// leave one intact block each and the user's line untouched: they all take
// the same lock. In the second case half of them run as a user who may
// write the file but not create anything in its directory (no lock file,
// no temporary file: they rewrite the file in place), while the others
// replace it by rename. Before the lock was the directory's, those took a
// different lock (the hosts file itself, lost at each rename) and updates
// were lost.
func TestFileConcurrentWriters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nobody bool
	}{{"same rights", false}, {"some cannot create the lock file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.nobody {
				needs.Root(t, "to run writers as nobody")
			}
			dir, bin := publicDir(t)
			path := filepath.Join(dir, "hosts")
			if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n# mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.nobody {
				if err := os.Chown(path, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}
			var cmds []*exec.Cmd
			for i := range 20 {
				var wrap []string
				if tc.nobody && i%2 == 1 {
					wrap = []string{"runuser", "-u", "nobody", "--"}
				}
				cmd := helperCmdBin(bin, "write", path, "w"+strconv.Itoa(i), wrap...)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, cmd)
				t.Cleanup(func() {
					if t.Failed() && out.Len() > 0 {
						t.Logf("writer %d: %s", i, out.String())
					}
				})
			}
			for _, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Errorf("writer: %v", err)
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
			if tc.nobody {
				if st := stat(t, path); st.Uid != 65534 {
					t.Errorf("the file's owner became %d", st.Uid)
				}
			}
		})
	}
}

// publicDir is a directory every user can enter, holding a copy of the
// test binary they can run (t.TempDir's parents may be closed to them).
func publicDir(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubefwd-hosts-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "helper")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

func helperCmdBin(bin, mode, path, id string, wrap ...string) *exec.Cmd {
	args := append(wrap, bin, "-test.run=^$", path, id)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t)
}

// The lock is the directory's: a writer waits while another process holds
// it, and proceeds once it is released.
func TestFileWaitsForTheLock(t *testing.T) {
	path := writeHosts(t, "127.0.0.1 localhost\n", 0o644)
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (&File{Path: path, Block: blk}).Apply(entries("127.1.27.1", "web"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("wrote while another process held the lock (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mustRead(t, path)), "127.1.27.1 web") {
		t.Error("not written after the lock was released")
	}
}

// Without permission to write, nothing changes and the error says why.
func TestFileReadOnly(t *testing.T) {
	needs.Root(t, "to run a writer as nobody")
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

// What the system attached to the hosts file (an SELinux label, an ACL,
// here a user.* attribute: the same mechanism) survives a write.
func TestFileKeepsExtendedAttributes(t *testing.T) {
	path := writeHosts(t, "127.0.0.1 localhost\n", 0o644)
	if err := unix.Setxattr(path, "user.kubefwd-test", []byte("label"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	f := &File{Path: path, Block: blk}
	if _, err := f.Apply(entries("127.1.27.1", "web")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.kubefwd-test", buf)
	if err != nil || string(buf[:n]) != "label" {
		t.Errorf("user.kubefwd-test after a write: %q, %v", buf[:max(n, 0)], err)
	}
	if !strings.Contains(string(mustRead(t, path)), "127.1.27.1 web") {
		t.Error("not written")
	}
}

// A symlinked hosts file (NixOS: /etc/hosts -> /etc/static/hosts): the
// target is written and the link stays a link.
func TestFileSymlinked(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "static", "hosts")
	if err := os.WriteFile(target, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hosts")
	if err := os.Symlink("static/hosts", path); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path, Block: blk}
	if _, err := f.Apply(entries("127.1.27.1", "web")); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(path); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symlink", path)
	}
	if !strings.Contains(string(mustRead(t, target)), "127.1.27.1 web") {
		t.Errorf("the link's target was not written:\n%s", mustRead(t, target))
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := string(mustRead(t, target)); got != "127.0.0.1 localhost\n" {
		t.Errorf("after Remove: %q", got)
	}
}

// Lines a user added inside the block are kept, out of it, and reported.
func TestFileReportsUserLines(t *testing.T) {
	path := writeHosts(t, "127.0.0.1 localhost\n", 0o644)
	var reported [][]string
	f := &File{Path: path, Block: blk, OnUserLines: func(l []string) { reported = append(reported, l) }}
	if _, err := f.Apply(entries("127.1.27.1", "web")); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(mustRead(t, path)), "127.1.27.1 web\n", "127.1.27.1 web\n10.0.0.7 db # mine\n", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(entries("127.1.27.1", "web", "127.1.27.2", "api")); err != nil {
		t.Fatal(err)
	}
	got := string(mustRead(t, path))
	if !strings.HasPrefix(got, "127.0.0.1 localhost\n10.0.0.7 db # mine\n# kubefwd begin a1b2 ") {
		t.Errorf("the user's line is not kept just before the block:\n%s", got)
	}
	if len(reported) != 1 || !slices.Equal(reported[0], []string{"10.0.0.7 db # mine"}) {
		t.Errorf("reported %q", reported)
	}
}

// A dead instance's block whose end marker a user deleted is found and
// removed by the stale clean-up; the user's lines after it stay.
func TestRemoveStaleBrokenBlock(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	owner := Owner{PID: dead.Process.Pid}.String()
	block, _ := Render(nil, Block{ID: "dead", Owner: owner}, entries("127.9.0.1", "a", "127.9.0.2", "b"))
	broken := strings.Replace(string(block), "# kubefwd end dead\n", "", 1)
	path := writeHosts(t, "127.0.0.1 localhost\n"+broken+"127.0.0.9 user-own\n", 0o644)
	f := &File{Path: path, Block: Block{ID: "me", Owner: Self().String()}}
	gone, err := f.RemoveStale()
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 {
		t.Errorf("removed %v", gone)
	}
	if got := string(mustRead(t, path)); got != "127.0.0.1 localhost\n127.0.0.9 user-own\n" {
		t.Errorf("got %q", got)
	}
}

// Any local user can open /etc and flock it (flock needs only a
// descriptor), as they could the lock file before. A writer then fails
// after a bounded wait with an error that names the holder, instead of
// hanging for ever.
func TestHostileLockHolder(t *testing.T) {
	needs.Root(t, "to run a process as nobody")
	dir, bin := publicDir(t)
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := helperCmdBin(bin, "hold", path, "x", "runuser", "-u", "nobody", "--")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	start := time.Now()
	_, err = lockWithin(path, 300*time.Millisecond)
	if err == nil {
		t.Fatal("took the lock another process holds")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gave up after %s", took)
	}
	// runuser forks: the holder is its child, whose pid we do not know;
	// the message must name some process and the directory.
	if !regexp.MustCompile(`^process [0-9]+ has held the lock on `).MatchString(err.Error()) || !strings.Contains(err.Error(), dir) {
		t.Errorf("error does not say who holds what: %v", err)
	}
	t.Log(err)
}
