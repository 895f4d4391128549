// Package binaries builds the devcluster's control-plane binaries from the
// versions pinned in test/devcluster/tools/go.mod and caches them outside the
// repository, keyed by those pins, so that every test binary, the demo and
// `devcluster up` share one build.
package binaries

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/kubefwd/kubefwd/test/devcluster/flock"
)

// Names of the binaries in a cache directory.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	Kubectl               = "kubectl"
	Kwok                  = "kwok"
	Kwokctl               = "kwokctl"
)

// recipeVersion changes whenever the way we build changes (flags, layout),
// so that an old cache is never mistaken for a new one.
const recipeVersion = "1"

// completeMarker is written last; a directory without it is a broken build.
const completeMarker = ".complete"

// Set is a complete set of built binaries.
type Set struct {
	Dir         string // cache directory holding the binaries
	KubeVersion string // e.g. "v1.36.4"
}

// Path returns the absolute path of the named binary.
func (s Set) Path(name string) string { return filepath.Join(s.Dir, name) }

type target struct {
	name string // binary name in the cache
	pkg  string // Go package to build
}

// Options configures Ensure. The zero value finds the tools module from the
// working directory and logs nowhere.
type Options struct {
	// ToolsDir is the directory of the pinned tools module. Empty means
	// "find test/devcluster/tools above the working directory".
	ToolsDir string
	// CacheDir overrides the cache root ($XDG_CACHE_HOME or ~/.cache).
	CacheDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Ensure returns a complete set of binaries, building it first if the cache
// does not hold one for the current pins. Concurrent callers (in this or other
// processes) build once: the others wait on a file lock and reuse the result.
func Ensure(ctx context.Context, opts Options) (Set, error) {
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	toolsDir := opts.ToolsDir
	if toolsDir == "" {
		d, err := FindToolsDir()
		if err != nil {
			return Set{}, err
		}
		toolsDir = d
	}
	pins, err := readPins(toolsDir)
	if err != nil {
		return Set{}, err
	}
	goVersion, err := goEnv(ctx, "GOVERSION")
	if err != nil {
		return Set{}, err
	}
	root := opts.CacheDir
	if root == "" {
		if root, err = CacheRoot(); err != nil {
			return Set{}, err
		}
	}
	key := pins.key(goVersion)
	dir := filepath.Join(root, key)
	set := Set{Dir: dir, KubeVersion: pins.kube}
	if complete(dir) {
		markUsed(dir)
		return set, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Set{}, fmt.Errorf("create binary cache %s: %w", root, err)
	}
	unlock, err := flock.Acquire(ctx, filepath.Join(root, key+".lock"), func() {
		fmt.Fprintf(logw, "devcluster: waiting for another process building binaries in %s\n", dir)
	})
	if err != nil {
		return Set{}, err
	}
	defer unlock()
	if complete(dir) { // somebody else built it while we waited
		return set, nil
	}
	if err := build(ctx, logw, toolsDir, dir, pins); err != nil {
		return Set{}, err
	}
	pruneUnused(root, key, logw)
	return set, nil
}

// unusedFor is how long a set of binaries for other pins is kept after its
// last use. Each set is about half a gigabyte.
const unusedFor = 14 * 24 * time.Hour

// markUsed records that a set was used, so pruneUnused keeps it.
func markUsed(dir string) {
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, completeMarker), now, now)
}

// pruneUnused removes sets of other pins that nobody used for unusedFor.
func pruneUnused(root, keep string, logw io.Writer) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == keep || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		info, err := os.Stat(filepath.Join(root, e.Name(), completeMarker))
		if err != nil || time.Since(info.ModTime()) < unusedFor {
			continue
		}
		fmt.Fprintf(logw, "devcluster: removing binaries unused since %s: %s\n", info.ModTime().Format(time.DateOnly), e.Name())
		_ = os.RemoveAll(filepath.Join(root, e.Name()))
		_ = os.Remove(filepath.Join(root, e.Name()+".lock"))
	}
}

func complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMarker))
	return err == nil
}

// build compiles every target into a fresh temporary directory next to dir and
// renames it into place, so that a half-finished build is never visible.
func build(ctx context.Context, logw io.Writer, toolsDir, dir string, p pins) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	targets := p.targets()
	fmt.Fprintf(logw, "devcluster: building %d binaries (kubernetes %s, etcd %s, kwok %s) into %s; a cold build takes several minutes\n",
		len(targets), p.kube, p.etcd, p.kwok, dir)
	start := time.Now()
	for i, t := range targets {
		fmt.Fprintf(logw, "devcluster: [%d/%d] go build %s\n", i+1, len(targets), t.pkg)
		if err := goBuild(ctx, logw, toolsDir, filepath.Join(tmp, t.name), t.pkg, p.ldflags()); err != nil {
			return fmt.Errorf("build %s: %w", t.name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	fmt.Fprintf(logw, "devcluster: binaries ready in %s (%s)\n", dir, time.Since(start).Round(time.Second))
	return nil
}

// goBuild runs one `go build`, printing a heartbeat while it runs: the first
// build of kube-apiserver is silent for minutes otherwise.
func goBuild(ctx context.Context, logw io.Writer, toolsDir, out, pkg, ldflags string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = toolsDir
	// Static binaries, built from the pinned module only, never a workspace.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	var output strings.Builder
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%w\n%s", err, output.String())
			}
			return nil
		case <-tick.C:
			fmt.Fprintf(logw, "devcluster:        still building %s (%s)\n", pkg, time.Since(start).Round(time.Second))
		}
	}
}

// pins are the versions read from the tools module.
type pins struct {
	kube, etcd, kwok string
	modSum           []byte // go.mod and go.sum contents, hashed into the key
}

func readPins(toolsDir string) (pins, error) {
	modPath := filepath.Join(toolsDir, "go.mod")
	data, err := os.ReadFile(modPath)
	if err != nil {
		return pins{}, fmt.Errorf("read tool pins: %w", err)
	}
	sum, err := os.ReadFile(filepath.Join(toolsDir, "go.sum"))
	if err != nil {
		return pins{}, fmt.Errorf("read tool pins: %w", err)
	}
	f, err := modfile.Parse(modPath, data, nil)
	if err != nil {
		return pins{}, err
	}
	p := pins{modSum: append(data, sum...)}
	for _, r := range f.Require {
		switch r.Mod.Path {
		case "k8s.io/kubernetes":
			p.kube = r.Mod.Version
		case "go.etcd.io/etcd/server/v3":
			p.etcd = r.Mod.Version
		case "sigs.k8s.io/kwok":
			p.kwok = r.Mod.Version
		}
	}
	if p.kube == "" || p.etcd == "" || p.kwok == "" {
		return pins{}, fmt.Errorf("%s must require k8s.io/kubernetes, go.etcd.io/etcd/server/v3 and sigs.k8s.io/kwok", modPath)
	}
	return p, nil
}

func (p pins) targets() []target {
	return []target{
		{Etcd, "go.etcd.io/etcd/server/v3"},
		{KubeAPIServer, "k8s.io/kubernetes/cmd/kube-apiserver"},
		{KubeControllerManager, "k8s.io/kubernetes/cmd/kube-controller-manager"},
		{KubeScheduler, "k8s.io/kubernetes/cmd/kube-scheduler"},
		{Kubectl, "k8s.io/kubernetes/cmd/kubectl"},
		{Kwok, "sigs.k8s.io/kwok/cmd/kwok"},
		{Kwokctl, "sigs.k8s.io/kwok/cmd/kwokctl"},
	}
}

// ldflags stamps the versions the release builds would carry: kwokctl reads
// `--version` of each binary to choose its flags, and the apiserver derives
// its compatibility version from it.
func (p pins) ldflags() string {
	major, minor := "1", ""
	if parts := strings.SplitN(strings.TrimPrefix(p.kube, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	var b strings.Builder
	b.WriteString("-s -w")
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, " -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
			pkg, p.kube, pkg, major, pkg, minor, pkg)
	}
	fmt.Fprintf(&b, " -X sigs.k8s.io/kwok/pkg/consts.Version=%s -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=%s",
		strings.TrimPrefix(p.kwok, "v"), strings.TrimPrefix(p.kube, "v"))
	return b.String()
}

func (p pins) key(goVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s/%s\x00%s\x00", recipeVersion, goVersion, runtime.GOOS, runtime.GOARCH, p.ldflags())
	h.Write(p.modSum)
	return fmt.Sprintf("k8s-%s_%s", p.kube, hex.EncodeToString(h.Sum(nil))[:12])
}

// CacheRoot is where binary sets live: $XDG_CACHE_HOME/kubefwd-devcluster,
// else ~/.cache/kubefwd-devcluster.
func CacheRoot() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kubefwd-devcluster"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set XDG_CACHE_HOME or HOME: %w", err)
	}
	return filepath.Join(home, ".cache", "kubefwd-devcluster"), nil
}

// FindToolsDir walks up from the working directory to the repository root
// (the directory holding kubefwd's go.mod) and returns its tools module.
func FindToolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "test", "devcluster", "tools", "go.mod")
		if _, err := os.Stat(candidate); err == nil {
			return filepath.Dir(candidate), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find test/devcluster/tools/go.mod above the working directory; run from inside the kubefwd repository")
		}
		dir = parent
	}
}

func goEnv(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("the Go toolchain is needed to build the devcluster (go env %s): %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
