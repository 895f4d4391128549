package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kubefwd/kubefwd/internal/helper"
)

type distOptions struct {
	Repo, Out, Targets, Version, Go, ReleaseURL string
}

// The repository's files every archive and package carries when present.
// There is no LICENSE file yet: it is added to both when there is one.
var extraFiles = []string{"README.md", "LICENSE"}

// packagedUnit is the helper's unit as the Linux packages install it.
func packagedUnit() string { return helper.SystemdUnitFile(helper.PackageConfig()) }

// dist builds every artifact into o.Out, which it empties first.
func dist(ctx context.Context, o distOptions, log io.Writer) error {
	targets, err := parseTargets(o.Targets)
	if err != nil {
		return err
	}
	// go build runs in the repository: every path absolute.
	if o.Repo, err = filepath.Abs(o.Repo); err != nil {
		return err
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return err
	}
	s, err := readStamp(ctx, o.Repo, o.Version)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "release: kubefwd %s (commit %s of %s) for %d platforms into %s\n", s.Version, s.Commit, s.Time.Format("2006-01-02T15:04:05Z"), len(targets), o.Out)
	if err := os.RemoveAll(o.Out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp("", "kubefwd-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)

	// What every archive carries besides the binary, also staged on disk
	// for the packages.
	shared, err := docs(s.Version, s.Time)
	if err != nil {
		return err
	}
	extra := map[string]string{}
	for _, name := range extraFiles {
		data, err := os.ReadFile(filepath.Join(o.Repo, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		shared = append(shared, entry{Name: name, Mode: 0o644, Data: data})
		extra[name] = filepath.Join(o.Repo, name)
	}
	staged := map[string]string{}
	for _, e := range shared {
		p := filepath.Join(stage, "docs", filepath.FromSlash(e.Name))
		if err := writeFile(p, e.Data, 0o644); err != nil {
			return err
		}
		staged[e.Name] = p
	}
	unit := filepath.Join(stage, helper.SystemdName)
	if err := writeFile(unit, []byte(packagedUnit()), 0o644); err != nil {
		return err
	}
	scripts, err := stageScripts(filepath.Join(o.Repo, "release", "packaging"), filepath.Join(stage, "scripts"), s)
	if err != nil {
		return err
	}

	var archives []archiveRef
	for _, t := range targets {
		bin := filepath.Join(o.Out, "bin", t.OS+"_"+t.Arch, t.exe())
		if err := build(ctx, o.Go, o.Repo, s, t, bin); err != nil {
			return err
		}
		a, err := writeArchive(o.Out, s, t, bin, shared)
		if err != nil {
			return err
		}
		a.URL = strings.TrimSuffix(o.ReleaseURL, "/") + "/" + s.Version + "/" + a.Name
		archives = append(archives, a)
		doc, err := sbomFile(bin, s)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(o.Out, a.Name+".cdx.json"), doc, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(log, "release: %s: %s, %s.cdx.json\n", t, a.Name, a.Name)
		if t.OS != "linux" {
			continue
		}
		pkgs, err := writePackages(o.Out, s, t.Arch, packageInput{
			Binary: bin, Docs: staged, Unit: unit, Extra: extra, Scripts: scripts,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(log, "release: %s: %s\n", t, strings.Join(pkgs, ", "))
	}

	rendered, err := renderManifests(newManifestData(s, archives))
	if err != nil {
		return err
	}
	for name, data := range rendered {
		if err := writeFile(filepath.Join(o.Out, name), data, 0o644); err != nil {
			return err
		}
	}
	sums, err := checksums(o.Out)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(o.Out, "SHA256SUMS"), sums, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(log, "release: %d files in %s; check them with: cd %s && sha256sum -c SHA256SUMS\n", bytes.Count(sums, []byte("\n")), o.Out, o.Out)
	return nil
}

// stageScripts copies the package scripts from src into dir, dated by the
// commit: the apk format records a script's time as its file has it, and a
// checkout's files are as old as the checkout.
func stageScripts(src, dir string, s Stamp) (string, error) {
	for _, name := range []string{"postinstall.sh", "preremove.sh", "postremove.sh"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, name)
		if err := writeFile(p, data, 0o755); err != nil {
			return "", err
		}
		if err := os.Chtimes(p, s.Time, s.Time); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// writeArchive writes t's archive (zip for Windows, else tar.gz) of the
// binary and the shared entries into dir.
func writeArchive(dir string, s Stamp, t Target, bin string, shared []entry) (archiveRef, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return archiveRef{}, err
	}
	entries := append(slices.Clone(shared), entry{Name: t.exe(), Mode: 0o755, Data: data})
	a := archiveRef{OS: t.OS, Arch: t.Arch, Exe: t.exe(), Name: "kubefwd_" + s.FileVersion() + "_" + t.OS + "_" + t.Arch}
	write := writeTarGz
	if a.Name += ".tar.gz"; t.OS == "windows" {
		a.Name = strings.TrimSuffix(a.Name, ".tar.gz") + ".zip"
		write = writeZip
	}
	var b bytes.Buffer
	if err := write(&b, entries, s.Time); err != nil {
		return archiveRef{}, fmt.Errorf("archive %s: %w", a.Name, err)
	}
	sum := sha256.Sum256(b.Bytes())
	a.SHA256 = hex.EncodeToString(sum[:])
	return a, writeFile(filepath.Join(dir, a.Name), b.Bytes(), 0o644)
}

// checksums lists the SHA-256 of every file under dir but SHA256SUMS, in
// sha256sum's format, sorted by path.
func checksums(dir string) ([]byte, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "SHA256SUMS" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+filepath.ToSlash(rel)+"\n")
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(lines, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	return []byte(strings.Join(lines, "")), nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}
