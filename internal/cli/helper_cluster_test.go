//go:build linux

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubefwd/kubefwd/internal/api"
	"github.com/kubefwd/kubefwd/internal/helper"
	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
	"github.com/kubefwd/kubefwd/test/devcluster/clustertest"
)

const nobody = 65534

// helperSetup is a root helper allowing nobody, a hosts file with the
// user's own lines, and a home for nobody holding its kubeconfig.
type helperSetup struct {
	env                       []string // for nobody's processes
	base, home, socket, hosts string
	original                  string
	helper                    *exec.Cmd
	helperLog                 *clustertest.Buffer
}

func startHelperSetup(t *testing.T, c *cluster.Cluster) *helperSetup {
	t.Helper()
	if os.Geteuid() != 0 {
		clustertest.Skip(t, "needs root to run the helper and act as nobody")
	}
	for _, tool := range []string{"runuser", "unshare", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			clustertest.Skip(t, "needs %s", tool)
		}
	}
	env, base := controlEnv(t)
	s := &helperSetup{base: base, home: filepath.Join(base, "home"), socket: filepath.Join(base, "run", "helper.sock"), hosts: filepath.Join(base, "hosts")}
	s.original = "127.0.0.1\tlocalhost\n# the user's own comment\n10.1.2.3 corp-proxy  \n"
	if err := os.WriteFile(s.hosts, []byte(s.original), 0o644); err != nil {
		t.Fatal(err)
	}
	// nobody's own kubeconfig, credentials embedded, in nobody's home.
	if c != nil {
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if err := clientcmdapi.FlattenConfig(cfg); err != nil {
			t.Fatal(err)
		}
		if err := clientcmd.WriteToFile(*cfg, filepath.Join(s.home, ".kube", "config")); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(s.home, 0o755); err != nil {
		t.Fatal(err)
	}
	chownTree(t, s.home, nobody)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "TMPDIR=") {
			s.env = append(s.env, kv)
		}
	}
	// nobody's own temporary directory, where its control socket goes.
	tmp := filepath.Join(s.home, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	chownTree(t, s.home, nobody)
	s.env = append(s.env, "HOME="+s.home, "TMPDIR="+tmp)

	s.helperLog = &clustertest.Buffer{}
	s.helper = exec.Command(kubefwdBinary(t), "helper", "run", "--socket", s.socket, "--hosts-path", s.hosts, "--allow-user", "nobody")
	s.helper.Stderr = s.helperLog
	if err := s.helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.helper.Process.Signal(os.Interrupt)
		s.helper.Wait()
	})
	err := cluster.Poll(t.Context(), 10*time.Second, func(ctx context.Context) (bool, error) {
		_, err := helper.Info(ctx, s.socket)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the helper never answered:\n%s", s.helperLog)
	}
	return s
}

// startSvc starts kubefwd svc -n demo as nobody, through the helper.
func (s *helperSetup) startSvc(t *testing.T, instance string) (*exec.Cmd, *clustertest.Buffer) {
	t.Helper()
	svc := asUser(exec.Command(kubefwdBinary(t), "svc", "-n", "demo", "--helper-socket", s.socket, "--instance", instance), nobody)
	svc.Env = s.env
	log := &clustertest.Buffer{}
	svc.Stderr = log
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Process.Kill()
		svc.Wait()
	})
	return svc, log
}

func chownTree(t *testing.T, root string, uid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// asUser runs the kubefwd binary as uid, so that its pid is kubefwd's own.
func asUser(cmd *exec.Cmd, uid int) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	return cmd
}

// TestHelperAsNobody: with a helper allowing nobody, nobody runs kubefwd svc
// itself — its own kubeconfig, its own state — and gets every Service on
// its real port (80 and 53 included), names that resolve, a working
// control API, and no root-owned file in its home. kill -9 of the client
// takes its entries away within a second.
func TestHelperAsNobody(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	s := startHelperSetup(t, c)

	svc, svcLog := s.startSvc(t, "hlp")
	clustertest.WaitAnswers(t, s.hosts, "web", "demo", svcLog, s.helperLog)
	if !strings.Contains(svcLog.String(), "using the kubefwd helper") {
		t.Errorf("svc did not say it uses the helper:\n%s", svcLog)
	}

	// Name resolution through a real hosts file: curl, as nobody, in a
	// private mount namespace where the helper's file is /etc/hosts.
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/hosts && exec runuser -u nobody -- curl -sS --max-time 10 http://web/`, "sh", s.hosts).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "pod=demo/") {
		t.Fatalf("curl http://web/ as nobody: %v: %s", err, out)
	}

	// Every Service is forwarded on its own port, below 1024 too, and the
	// control API works for nobody.
	var st api.Status
	err = cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		out, err := kubefwdAs(t, s.env, "nobody", "status", "--json", "--instance", "hlp")
		if err != nil {
			t.Logf("status as nobody: %v: %s", err, out)
			return false, nil
		}
		st = api.Status{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, err
		}
		active := 0
		for _, f := range st.Forwards {
			if f.Pod == "" && f.State == api.StateActive {
				active++
			}
		}
		return active >= 6, nil
	})
	if err != nil {
		t.Fatalf("status as nobody: %v; last %+v\n%s", err, st, svcLog)
	}
	ports := map[int32]bool{}
	for _, f := range st.Forwards {
		for _, p := range f.Ports {
			ports[p.Local] = true
		}
	}
	if !ports[80] || !ports[53] {
		t.Errorf("ports below 1024 not forwarded through the helper: %v", ports)
	}
	if out, err := kubefwdAs(t, s.env, "nobody", "refresh", "--instance", "hlp"); err != nil {
		t.Errorf("refresh as nobody: %v\n%s", err, out)
	}
	clustertest.WaitAnswers(t, s.hosts, "web", "demo", svcLog)

	// kubefwd stop, as nobody: a clean exit, the entries gone, the
	// addresses saved in nobody's state file.
	if out, err := kubefwdAs(t, s.env, "nobody", "stop", "--instance", "hlp"); err != nil {
		t.Fatalf("stop as nobody: %v\n%s", err, out)
	}
	if err := svc.Wait(); err != nil {
		t.Errorf("svc after stop: %v\n%s", err, svcLog)
	}
	if data, _ := os.ReadFile(s.hosts); string(data) != s.original {
		t.Errorf("after stop the hosts file is:\n%q\nwant:\n%q", data, s.original)
	}

	// Nothing of nobody's became root's.
	for _, root := range []string{s.home} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := os.Lstat(p)
			if err == nil && info.Sys().(*syscall.Stat_t).Uid != nobody {
				t.Errorf("%s is owned by uid %d, not nobody", p, info.Sys().(*syscall.Stat_t).Uid)
			}
			return nil
		})
	}
	if _, err := os.Stat(filepath.Join(s.home, ".local", "state", "kubefwd", "addresses.json")); err != nil {
		t.Errorf("nobody's state file: %v", err)
	}

	// kill -9: the helper sees the connection close and removes the block
	// at once; the user's lines are byte for byte what they were.
	svc, svcLog = s.startSvc(t, "hlp2")
	clustertest.WaitAnswers(t, s.hosts, "web", "demo", svcLog, s.helperLog)
	if err := svc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	svc.Wait()
	killed := time.Now()
	err = cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(s.hosts)
		return string(data) == s.original, nil
	})
	if err != nil {
		data, _ := os.ReadFile(s.hosts)
		t.Fatalf("after kill -9 the hosts file is:\n%q\nwant:\n%q\nhelper:\n%s", data, s.original, s.helperLog)
	}
	within(t, "the block gone after kill -9", time.Since(killed), time.Second)
}

// Another program writing the hosts file in place (as VPN clients do)
// drops the block; the instance notices and has the helper put it back,
// with the other program's lines kept.
func TestHelperHostsBlockRestoredAfterInPlaceRewrite(t *testing.T) {
	c := clustertest.Seeded(t, "demo")
	s := startHelperSetup(t, c)
	_, svcLog := s.startSvc(t, "rewrite")
	clustertest.WaitAnswers(t, s.hosts, "web", "demo", svcLog, s.helperLog)
	// Every entry written (pods still turning ready add names): a block
	// written again by a change of entries would not prove the watch.
	var last string
	steady := time.Now()
	err := cluster.Poll(t.Context(), 30*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(s.hosts)
		if string(data) != last {
			last, steady = string(data), time.Now()
		}
		return time.Since(steady) >= 3*time.Second, nil
	})
	if err != nil {
		t.Fatalf("the hosts file never settled: %v", err)
	}

	user := s.original + "10.9.9.2 vpn-two\n"
	if err := os.WriteFile(s.hosts, []byte(user), 0o644); err != nil {
		t.Fatal(err)
	}
	err = cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(s.hosts)
		return strings.HasPrefix(string(data), user) && strings.Contains(string(data), " web "), nil
	})
	if err != nil {
		data, _ := os.ReadFile(s.hosts)
		t.Fatalf("the block did not come back after a write in place:\n%s\nsvc:\n%s\nhelper:\n%s", data, svcLog, s.helperLog)
	}
	clustertest.WaitAnswers(t, s.hosts, "web", "demo", svcLog)
}

// A user the helper does not allow is told so, by status and by svc; one
// it allows is told it is.
func TestHelperRefusesOthers(t *testing.T) {
	s := startHelperSetup(t, nil)
	out, err := kubefwdAs(t, s.env, "nobody", "helper", "status", "--socket", s.socket)
	if err != nil || !strings.Contains(out, "allowed: kubefwd svc uses the helper") {
		t.Errorf("helper status as nobody: %v\n%s", err, out)
	}
	out, err = kubefwdAs(t, s.env, "daemon", "helper", "status", "--socket", s.socket)
	if code := exitCode(err); code != ExitPrivileges || !strings.Contains(out, "does not allow daemon") {
		t.Errorf("helper status as daemon: exit %d\n%s", code, out)
	}
	kubeconfig := filepath.Join(s.base, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(deadKubeconfig), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = kubefwdAs(t, s.env, "daemon", "svc", "-c", kubeconfig, "-n", "demo", "--helper=always", "--helper-socket", s.socket)
	if code := exitCode(err); code != ExitPrivileges || !strings.Contains(out, "not allowed to use this kubefwd helper") {
		t.Errorf("svc --helper=always as daemon: exit %d\n%s", code, out)
	}
	// Neither root nor a helper: the error offers both ways.
	out, err = kubefwdAs(t, s.env, "daemon", "svc", "-c", kubeconfig, "-n", "demo", "--helper-socket", filepath.Join(s.base, "none.sock"))
	if code := exitCode(err); code != ExitPrivileges || !strings.Contains(out, "sudo -E kubefwd svc") || !strings.Contains(out, "sudo kubefwd helper install") {
		t.Errorf("svc as daemon without a helper: exit %d\n%s", code, out)
	}
	if data, _ := os.ReadFile(s.hosts); string(data) != s.original {
		t.Errorf("the hosts file changed:\n%s", data)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// A flood of requests costs the helper a bounded amount: after more rounds
// as large as the first, its memory has not grown with them, and it holds
// no more descriptors than before.
func TestHelperFlood(t *testing.T) {
	s := startHelperSetup(t, nil)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(s.base, "flood")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	pid := s.helper.Process.Pid
	fdsBefore := countFDs(t, pid)
	round := func(n int) {
		t.Helper()
		// The last round's connections, dropped by the flood, count
		// against nobody's budget until the helper has seen them close:
		// a round started before that is refused, rightly.
		err := cluster.Poll(t.Context(), 10*time.Second, func(context.Context) (bool, error) {
			return countFDs(t, pid) <= fdsBefore, nil
		})
		if err != nil {
			t.Fatalf("before flood round %d, the helper still holds %d descriptors (%d before the first)", n, countFDs(t, pid), fdsBefore)
		}
		cmd := asUser(exec.Command(bin, "-test.run=^$"), nobody)
		cmd.Env = append(s.env, floodEnv+"="+s.socket, "KUBEFWD_FLOOD_ROUND="+strconv.Itoa(n))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("flood round %d: %v\n%s", n, err, out)
		}
	}
	// Each round leaks, if anything leaks, some 3,000 sockets and 40 MB
	// of requests; the garbage collector's own swings are far smaller.
	var rss []int
	for n := range 3 {
		round(n + 1)
		rss = append(rss, rssKiB(t, pid))
	}
	t.Logf("helper RSS after each round: %v KiB", rss)
	if top := max(rss[1], rss[2]); top > rss[0]+24*1024 {
		t.Errorf("the helper grew from %d KiB to %d KiB over two more floods", rss[0], top)
	}
	err = cluster.Poll(t.Context(), 5*time.Second, func(context.Context) (bool, error) {
		return countFDs(t, pid) <= fdsBefore, nil
	})
	if err != nil {
		t.Errorf("the helper holds %d descriptors after the flood, %d before", countFDs(t, pid), fdsBefore)
	}
	if data, _ := os.ReadFile(s.hosts); string(data) != s.original {
		t.Errorf("the hosts file after the flood:\n%s", data)
	}
}

const floodEnv = "KUBEFWD_TEST_FLOOD"

// The test binary, run again as nobody with floodEnv set, is the flood.
func init() {
	if socket := os.Getenv(floodEnv); socket != "" {
		if err := flood(socket); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// flood runs in a child process as nobody: many connections, listens,
// large hosts blocks, oversized and malformed messages.
func flood(socket string) error {
	ctx := context.Background()
	round, _ := strconv.Atoi(os.Getenv("KUBEFWD_FLOOD_ROUND"))
	c, err := helper.Dial(ctx, socket, "flood"+strconv.Itoa(round), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range 3000 {
		ln, err := c.Listen(netip.MustParseAddrPort(fmt.Sprintf("127.2.%d.%d:%d", i/250, i%250+1, 20000+i)))
		if err != nil {
			return fmt.Errorf("listen %d: %w", i, err)
		}
		ln.Close()
	}
	entries := floodEntries(helper.MaxEntries)
	for i := range 20 {
		if _, err := c.Apply(entries); err != nil {
			return fmt.Errorf("hosts %d: %w", i, err)
		}
	}
	if err := c.Remove(); err != nil {
		return err
	}
	// Oversized and malformed messages, each on a new connection.
	big := strings.Repeat("x", helper.MaxMessage+10)
	for i := range 100 {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return err
		}
		msg := `{"op":"hello","instance":"` + big + `"}` + "\n"
		if i%2 == 1 {
			msg = `{"op":"hello","instance":"x"` + "\n" // truncated JSON
		}
		conn.Write([]byte(msg))
		bufio.NewReader(conn).ReadString('\n')
		conn.Close()
	}
	// Connections opened and dropped without a word.
	for range 1000 {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return err
		}
		conn.Close()
	}
	return nil
}

func floodEntries(n int) []hosts.Entry {
	out := make([]hosts.Entry, n)
	for i := range out {
		out[i] = hosts.Entry{Addr: netip.MustParseAddr(fmt.Sprintf("127.3.%d.%d", i/250, i%250+1)), Names: []string{
			fmt.Sprintf("svc-%d", i), fmt.Sprintf("svc-%d.flood", i), fmt.Sprintf("svc-%d.flood.svc.cluster.local", i)}}
	}
	return out
}

func countFDs(t *testing.T, pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func rssKiB(t *testing.T, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// helper install --root writes the binary and the unit (and no lock file:
// writers lock the hosts file's directory); uninstall takes them away again.
func TestHelperInstallFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		clustertest.Skip(t, "installing needs root")
	}
	root := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH")} // no SUDO_USER
	run := func(args ...string) (string, int) {
		cmd := exec.Command(kubefwdBinary(t), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), exitCode(err)
	}
	if out, code := run("helper", "install", "--root", root); code != ExitUsage || !strings.Contains(out, "--allow-user") {
		t.Errorf("install with nobody to allow: exit %d\n%s", code, out)
	}
	if out, code := run("helper", "install", "--root", root, "--allow-user", "no-such-user-here"); code != ExitUsage || !strings.Contains(out, "no such user") {
		t.Errorf("install allowing a user that does not exist: exit %d\n%s", code, out)
	}
	if out, code := run("helper", "install", "--root", root, "--allow-user", "nobody", "--allow-domain", "a b"); code != ExitUsage || !strings.Contains(out, "--allow-domain") {
		t.Errorf("install allowing a domain that is no DNS name: exit %d\n%s", code, out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("refused installs left files: %v", entries)
	}
	if out, code := run("helper", "install", "--root", root, "--allow-user", "nobody", "--allow-domain", ".Dev"); code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	info, err := os.Stat(filepath.Join(root, helper.InstallBinary))
	if err != nil || info.Mode().Perm() != 0o755 || info.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("installed binary: %v %v", info, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, helper.SystemdUnit))
	if err != nil || !strings.Contains(string(unit), "ExecStart="+helper.InstallBinary+" helper run") || !strings.Contains(string(unit), "--allow-user nobody --allow-domain dev\n") ||
		!strings.Contains(string(unit), "MemoryMax=") || !strings.Contains(string(unit), "TasksMax=") {
		t.Errorf("unit: %v\n%s", err, unit)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "hosts.kubefwd.lock")); err == nil {
		t.Errorf("a lock file was created: writers lock the directory, which needs none")
	}
	if out, code := run("helper", "uninstall", "--root", root); code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, out)
	}
	for _, p := range []string{helper.InstallBinary, helper.SystemdUnit} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s after uninstall: %v", p, err)
		}
	}
}
