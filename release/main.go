// Command release builds kubefwd's release artifacts into dist/ (make
// dist): reproducible binaries for every released platform, archives with
// the README, completions and man pages, Linux packages (deb, rpm, apk),
// an SBOM per archive, the krew, Homebrew and Scoop manifests, and
// SHA256SUMS over all of it. It is a module of its own, so that nfpm,
// cobra/doc and their dependencies stay out of kubefwd's go.mod, its
// binary and its lint.
//
//	go -C release run . [--targets "linux/amd64 darwin/arm64"] [--version v1.2.3]
//	go -C release run . docs DIR    (completions, man pages, the packaged unit: GoReleaser's hook)
//	go -C release run . sbom BINARY OUT
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	var o distOptions
	fs.StringVar(&o.Repo, "repo", "..", "the kubefwd repository")
	fs.StringVar(&o.Out, "out", "../dist", "where the artifacts go (emptied first)")
	fs.StringVar(&o.Targets, "targets", "", "GOOS/GOARCH to build, space- or comma-separated (default: every released platform)")
	fs.StringVar(&o.Version, "version", "", "the version to stamp (default: git describe --tags --always --dirty)")
	fs.StringVar(&o.Go, "go", "go", "the go command to build with")
	fs.StringVar(&o.ReleaseURL, "release-url", "https://github.com/kubefwd/kubefwd/releases/download", "where the release's files are published (the manifests point there, under the version)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch rest := fs.Args(); {
	case len(rest) == 0:
		return dist(ctx, o, out)
	case rest[0] == "docs" && len(rest) == 2:
		return writeDocs(ctx, o, rest[1])
	case rest[0] == "sbom" && len(rest) == 3:
		s, err := readStamp(ctx, o.Repo, o.Version)
		if err != nil {
			return err
		}
		doc, err := sbomFile(rest[1], s)
		if err != nil {
			return err
		}
		return os.WriteFile(rest[2], doc, 0o644)
	}
	return fmt.Errorf("unknown arguments %q: give none, docs DIR, or sbom BINARY OUT", fs.Args())
}

// writeDocs writes the completions, the man pages and the packaged
// helper unit into dir, as dist puts them into archives and packages.
func writeDocs(ctx context.Context, o distOptions, dir string) error {
	s, err := readStamp(ctx, o.Repo, o.Version)
	if err != nil {
		return err
	}
	entries, err := docs(s.Version, s.Time)
	if err != nil {
		return err
	}
	entries = append(entries, entry{Name: "kubefwd-helper.service", Mode: 0o644, Data: []byte(packagedUnit())})
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, e.Data, e.Mode); err != nil {
			return err
		}
	}
	return nil
}
