package binaries

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTools(t *testing.T, gomod string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), []byte("sums\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const goodMod = `module example.com/tools

go 1.26.0

require (
	go.etcd.io/etcd/server/v3 v3.6.8
	k8s.io/kubernetes v1.36.4
	sigs.k8s.io/kwok v0.8.0
)
`

func TestReadPins(t *testing.T) {
	p, err := readPins(writeTools(t, goodMod))
	if err != nil {
		t.Fatal(err)
	}
	if p.kube != "v1.36.4" || p.etcd != "v3.6.8" || p.kwok != "v0.8.0" {
		t.Fatalf("pins = %+v", p)
	}
	ld := p.ldflags()
	for _, want := range []string{
		"k8s.io/component-base/version.gitVersion=v1.36.4",
		"k8s.io/component-base/version.gitMinor=36",
		"sigs.k8s.io/kwok/pkg/consts.KubeVersion=1.36.4",
	} {
		if !strings.Contains(ld, want) {
			t.Errorf("ldflags lack %q: %s", want, ld)
		}
	}
	if _, err := readPins(writeTools(t, "module x\n\ngo 1.26.0\n")); err == nil {
		t.Error("a tools module without pins was accepted")
	}
}

// The cache key changes with every input that changes the binaries.
func TestKeyFollowsPins(t *testing.T) {
	a, _ := readPins(writeTools(t, goodMod))
	b, _ := readPins(writeTools(t, strings.Replace(goodMod, "v1.36.4", "v1.36.5", 1)))
	again, _ := readPins(writeTools(t, goodMod))
	if a.key("go1.26.8") != again.key("go1.26.8") {
		t.Fatal("key is not deterministic")
	}
	if a.key("go1.26.8") == b.key("go1.26.8") {
		t.Error("key ignores the Kubernetes version")
	}
	if a.key("go1.26.8") == a.key("go1.26.9") {
		t.Error("key ignores the Go version")
	}
	if !strings.HasPrefix(a.key("go1.26.8"), "k8s-v1.36.4_") {
		t.Errorf("key %q does not say what it holds", a.key("go1.26.8"))
	}
}

func TestCacheRoot(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if got, _ := CacheRoot(); got != "/x/cache/kubefwd-devcluster" {
		t.Errorf("CacheRoot = %q", got)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, _ := CacheRoot(); got != "/home/u/.cache/kubefwd-devcluster" {
		t.Errorf("CacheRoot = %q", got)
	}
}

// The repository's own pins are readable.
func TestRepositoryPins(t *testing.T) {
	dir, err := FindToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readPins(dir); err != nil {
		t.Fatal(err)
	}
}

func TestPruneUnused(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, age time.Duration) {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(dir, completeMarker)
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(marker, old, old); err != nil {
			t.Fatal(err)
		}
	}
	mk("current", 100*24*time.Hour)
	mk("recent", 24*time.Hour)
	mk("stale", 30*24*time.Hour)
	pruneUnused(root, "current", io.Discard)
	for name, want := range map[string]bool{"current": true, "recent": true, "stale": false} {
		_, err := os.Stat(filepath.Join(root, name))
		if got := err == nil; got != want {
			t.Errorf("%s kept = %v, want %v", name, got, want)
		}
	}
}
