package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noLeftovers fails when dir holds anything but want.
func noLeftovers(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		found := false
		for _, w := range want {
			found = found || e.Name() == w
		}
		if !found {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

// Each case prepares a directory and returns the path to write and the
// path whose content must change; the write must leave nothing else
// behind.
func TestWriteFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (path, content string, keep []string)
	}{
		{"new file", func(t *testing.T, dir string) (string, string, []string) {
			return filepath.Join(dir, "f"), filepath.Join(dir, "f"), []string{"f"}
		}},
		{"existing file", func(t *testing.T, dir string) (string, string, []string) {
			p := filepath.Join(dir, "f")
			mustWrite(t, p, "old content that is longer than the new one\n")
			return p, p, []string{"f"}
		}},
		{"symlink, relative", func(t *testing.T, dir string) (string, string, []string) {
			if runtime.GOOS == "windows" {
				t.Skip("symlinks need privileges on Windows")
			}
			mustWrite(t, filepath.Join(dir, "target"), "old\n")
			mustLink(t, "target", filepath.Join(dir, "link"))
			return filepath.Join(dir, "link"), filepath.Join(dir, "target"), []string{"target", "link"}
		}},
		{"symlink chain into another directory", func(t *testing.T, dir string) (string, string, []string) {
			if runtime.GOOS == "windows" {
				t.Skip("symlinks need privileges on Windows")
			}
			// NixOS: /etc/hosts -> /etc/static/hosts -> /nix/store/…
			mustMkdir(t, filepath.Join(dir, "static"))
			mustWrite(t, filepath.Join(dir, "static", "real"), "old\n")
			mustLink(t, "real", filepath.Join(dir, "static", "hosts"))
			mustLink(t, filepath.Join(dir, "static", "hosts"), filepath.Join(dir, "hosts"))
			return filepath.Join(dir, "hosts"), filepath.Join(dir, "static", "real"), []string{"hosts", "static"}
		}},
		{"dangling symlink creates its target", func(t *testing.T, dir string) (string, string, []string) {
			if runtime.GOOS == "windows" {
				t.Skip("symlinks need privileges on Windows")
			}
			mustLink(t, "missing", filepath.Join(dir, "link"))
			return filepath.Join(dir, "link"), filepath.Join(dir, "missing"), []string{"link", "missing"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, content, keep := tc.setup(t, dir)
			linkBefore, _ := os.Lstat(path)
			if err := WriteFile(path, []byte("new\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := read(t, content); got != "new\n" {
				t.Errorf("%s holds %q", content, got)
			}
			if linkBefore != nil && linkBefore.Mode()&os.ModeSymlink != 0 {
				after, err := os.Lstat(path)
				if err != nil || after.Mode()&os.ModeSymlink == 0 {
					t.Errorf("the link %s is no longer a link", path)
				}
			}
			noLeftovers(t, dir, keep...)
		})
	}
}

func TestWriteFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	mustMkdir(t, filepath.Join(dir, "d"))
	err := WriteFile(filepath.Join(dir, "d"), []byte("x"), 0o644)
	if err == nil {
		t.Fatal("wrote over a directory")
	}
	noLeftovers(t, dir, "d")
}

func TestWriteFileSymlinkLoop(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir := t.TempDir()
	mustLink(t, "b", filepath.Join(dir, "a"))
	mustLink(t, "a", filepath.Join(dir, "b"))
	if err := WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err == nil {
		t.Fatal("a symlink loop was written")
	}
	noLeftovers(t, dir, "a", "b")
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/etc/hosts`:         "/etc/hosts",
		`/tmp/a\040b`:        "/tmp/a b",
		`/tmp/tab\011x`:      "/tmp/tab\tx",
		`/tmp/back\134slash`: `/tmp/back\slash`,
		`/tmp/short\04`:      `/tmp/short\04`,
		`/tmp/bad\09x`:       `/tmp/bad\09x`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustLink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}
