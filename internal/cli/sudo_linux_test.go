package cli

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/test/needs"
)

// Under sudo, every path the invoking user names is used with their
// rights: a file they cannot read is "permission denied" and its content
// is never echoed; root writes nowhere they could not. Played as a hostile
// user (SUDO_UID of nobody) by root.
func TestHostileSudoPaths(t *testing.T) {
	needs.Root(t, "to play sudo")
	t.Setenv("SUDO_UID", "65534")
	t.Setenv("SUDO_GID", "65534")
	t.Setenv("SUDO_USER", "nobody")
	t.Setenv("KUBECONFIG", "")

	// A directory anyone may enter, holding root's secrets (like /etc) and
	// the user's own files (like their home).
	pub := t.TempDir()
	os.Chmod(filepath.Dir(pub), 0o755)
	os.Chmod(pub, 0o755)
	const secret = "s3cret-first-line"
	shadow := filepath.Join(pub, "shadow")
	if err := os.WriteFile(shadow, []byte(secret+"\nmore\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rootHosts := filepath.Join(pub, "sudoers-like")
	if err := os.WriteFile(rootHosts, []byte("# root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Join(pub, "rootdir")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(pub, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	userFile := func(name, content string) string {
		p := filepath.Join(home, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kubeconfig := userFile("kubeconfig", deadKubeconfig)
	tokenKubeconfig := userFile("token-kubeconfig", strings.Replace(deadKubeconfig, "user: {token: t}", "user: {tokenFile: "+shadow+"}", 1))
	certKubeconfig := userFile("cert-kubeconfig", strings.Replace(deadKubeconfig, "user: {token: t}", "user: {client-certificate: "+shadow+", client-key: "+shadow+"}", 1))
	userHosts := userFile("hosts", "127.0.0.1 localhost\n")
	state := filepath.Join(home, "state.json")
	link := filepath.Join(home, "innocent")
	if err := os.Symlink(shadow, link); err != nil {
		t.Fatal(err)
	}

	base := []string{"svc", "-n", "demo", "--state-file", state}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		mentions string
	}{
		{"namespaces file of root's", []string{"-c", kubeconfig, "--hosts-path", userHosts, "--namespaces-file", shadow, "-n", ""}, ExitUsage, "permission denied"},
		{"namespaces file through a link", []string{"-c", kubeconfig, "--hosts-path", userHosts, "--namespaces-file", link, "-n", ""}, ExitUsage, "permission denied"},
		{"-z of root's", []string{"-c", kubeconfig, "--hosts-path", userHosts, "-z", shadow}, ExitUsage, "permission denied"},
		{"kubeconfig of root's", []string{"-c", shadow, "--hosts-path", userHosts}, ExitUsage, "permission denied"},
		{"token file of root's", []string{"-c", tokenKubeconfig, "--hosts-path", userHosts}, ExitUsage, "permission denied"},
		{"certificate of root's", []string{"-c", certKubeconfig, "--hosts-path", userHosts}, ExitUsage, "permission denied"},
		{"hosts path of root's", []string{"-c", kubeconfig, "--hosts-path", rootHosts}, ExitPrivileges, "cannot write it"},
		{"profiles into root's directory", []string{"-c", kubeconfig, "--hosts-path", userHosts, "--profile-dir", filepath.Join(rootDir, "p")}, ExitUsage, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			args := append(append([]string{}, base...), tc.args...)
			if slicesContains(tc.args, "--namespaces-file") {
				args = append([]string{"svc", "--state-file", state}, tc.args[:len(tc.args)-2]...)
			}
			var out, errb strings.Builder
			code := Main(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			if last := lastLine(errb.String()); !strings.Contains(last, tc.mentions) {
				t.Errorf("last line %q does not say %q", last, tc.mentions)
			}
			if strings.Contains(errb.String()+out.String(), secret) {
				t.Errorf("root's file was echoed:\n%s", errb.String())
			}
		})
	}
	if data, _ := os.ReadFile(rootHosts); string(data) != "# root's\n" {
		t.Errorf("root's file was written: %q", data)
	}
	if entries, _ := os.ReadDir(rootDir); len(entries) != 0 {
		t.Errorf("root's directory was written: %v", entries)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A kubeconfig's exec plugin is the user's program: under sudo it runs as
// the user, with their home, never as root.
func TestHostileExecPluginRunsAsUser(t *testing.T) {
	needs.Root(t, "to play sudo")
	bin := kubefwdBinary(t)
	home := t.TempDir()
	os.Chmod(filepath.Dir(home), 0o755)
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(home, "plugin-ran-as")
	plugin := filepath.Join(home, "plugin.sh")
	script := "#!/bin/sh\necho \"$(id -u) $(id -g) $HOME\" > " + record + "\n" +
		`echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'` + "\n"
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(home, "kubeconfig")
	kc := strings.Replace(deadKubeconfig, "user: {token: t}",
		"user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: "+plugin+", interactiveMode: Never}}", 1)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o644); err != nil {
		t.Fatal(err)
	}
	hostsPath := filepath.Join(home, "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plugin, kubeconfig, hostsPath} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "svc", "-c", kubeconfig, "--hosts-path", hostsPath, "-n", "demo", "--helper", "never")
	cmd.Env = append(os.Environ(), "SUDO_UID=65534", "SUDO_GID=65534", "HOME=/root", "KUBECONFIG=")
	out, _ := cmd.CombinedOutput() // the cluster is unreachable: it ends with exit 3
	data, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("the exec plugin did not run: %v\n%s", err, out)
	}
	// HOME is the user's, from the user database (root's was passed in).
	pw, err := user.LookupId("65534")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(data)), "65534 65534 "+pw.HomeDir; got != want {
		t.Errorf("the plugin ran as %q, want %q", got, want)
	}
}
