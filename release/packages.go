package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/apk"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/kubefwd/kubefwd/internal/helper"
)

const (
	homepage    = "https://github.com/kubefwd/kubefwd"
	summary     = "Reach every Service of a Kubernetes cluster by its in-cluster name and port"
	description = "kubefwd makes every Service of a Kubernetes cluster reachable from this machine\n" +
		"by its in-cluster name and real port, each Service on its own loopback address,\n" +
		"following the cluster live."
	// No maintainer address is published yet; the packages name the project.
	maintainer = "kubefwd maintainers"
)

// A packager writes one package format.
type packager interface {
	Package(info *nfpm.Info, w io.Writer) error
	ConventionalFileName(info *nfpm.Info) string
}

// packageFormats are the Linux package formats, by file extension.
var packageFormats = []struct {
	name string
	p    packager
}{{"deb", deb.Default}, {"rpm", rpm.DefaultRPM}, {"apk", apk.Default}}

// packageInput is what goes into the Linux packages of one architecture:
// files already on disk (nfpm reads them by path).
type packageInput struct {
	Binary  string            // the built kubefwd
	Docs    map[string]string // staged docs: archive name (completions/…, man/…) → path
	Unit    string            // the rendered helper unit
	Extra   map[string]string // /usr/share/doc/kubefwd/NAME → path (README.md, LICENSE)
	Scripts string            // the directory of postinstall.sh, preremove.sh, postremove.sh
}

// nfpmArch is nfpm's name of a Go architecture (arm means GOARM=7).
func nfpmArch(goarch string) string {
	if goarch == "arm" {
		return "arm7"
	}
	return goarch
}

// packageInfo describes the kubefwd package for one architecture. Every
// file is root's and dated by the commit; nothing is enabled or started
// (the scripts only reload systemd and restart or stop a helper that an
// administrator started).
func packageInfo(s Stamp, format, goarch string, in packageInput) *nfpm.Info {
	base, pre := s.PackageVersion()
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, Type: files.TypeFile,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: s.Time}}
	}
	contents := files.Contents{
		file(in.Binary, helper.PackageBinary, 0o755),
		file(in.Unit, helper.PackageUnit, 0o644),
	}
	for _, name := range slices.Sorted(maps.Keys(in.Docs)) {
		if filepath.Dir(name) == "man" {
			contents = append(contents, file(in.Docs[name], "/usr/share/man/man1/"+filepath.Base(name), 0o644))
		}
	}
	completions := []struct{ name, dst, packager string }{
		{"completions/kubefwd.bash", "/usr/share/bash-completion/completions/kubefwd", ""},
		{"completions/kubefwd.fish", "/usr/share/fish/vendor_completions.d/kubefwd.fish", ""},
		// Debian's zsh looks in vendor-completions; Fedora's and Alpine's
		// in site-functions.
		{"completions/_kubefwd", "/usr/share/zsh/vendor-completions/_kubefwd", "deb"},
		{"completions/_kubefwd", "/usr/share/zsh/site-functions/_kubefwd", "rpm"},
		{"completions/_kubefwd", "/usr/share/zsh/site-functions/_kubefwd", "apk"},
	}
	for _, c := range completions {
		f := file(in.Docs[c.name], c.dst, 0o644)
		f.Packager = c.packager
		contents = append(contents, f)
	}
	for _, name := range slices.Sorted(maps.Keys(in.Extra)) {
		contents = append(contents, file(in.Extra[name], "/usr/share/doc/kubefwd/"+name, 0o644))
	}
	info := &nfpm.Info{
		Name: "kubefwd", Arch: nfpmArch(goarch), Platform: "linux",
		Version: base, Prerelease: pre, VersionSchema: "none", Release: "1",
		Section: "net", Priority: "optional", Maintainer: maintainer,
		Description: summary + "\n" + description, Homepage: homepage,
		MTime: s.Time,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(in.Scripts, "postinstall.sh"),
				PreRemove:   filepath.Join(in.Scripts, "preremove.sh"),
				PostRemove:  filepath.Join(in.Scripts, "postremove.sh"),
			},
			// rpm records the build host: a fixed one keeps it reproducible.
			RPM: nfpm.RPM{BuildHost: "kubefwd-release", Summary: summary, Group: "Applications/Internet"},
		},
	}
	if format == "deb" {
		// dpkg keeps a removed package that has a postrm as "config-files"
		// until it is purged; the deb's removal is complete without one
		// (the prerm stopped and disabled the helper, and systemd drops the
		// unit file's ghost at its next reload).
		info.Scripts.PostRemove = ""
	}
	return nfpm.WithDefaults(info)
}

// writePackages writes the deb, rpm and apk of one architecture into dir
// and returns their file names.
func writePackages(dir string, s Stamp, goarch string, in packageInput) ([]string, error) {
	var names []string
	for _, f := range packageFormats {
		// Each packager adjusts the info it is given (its names for the
		// architecture): a fresh one each.
		name := f.p.ConventionalFileName(packageInfo(s, f.name, goarch, in))
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		err = f.p.Package(packageInfo(s, f.name, goarch, in), out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("build the %s package for linux/%s: %w", f.name, goarch, err)
		}
		names = append(names, name)
	}
	return names, nil
}
