package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// An archiveRef is a released archive, as the manifests point at it.
type archiveRef struct {
	OS, Arch string // krew's names (Go's)
	Exe      string // the program in the archive
	Name     string // the archive's file name
	URL      string // where the release publishes it
	SHA256   string
}

// manifestData is what the krew, Homebrew and Scoop templates render.
type manifestData struct {
	Tag      string // the version kubefwd prints (v1.2.3)
	Version  string // the package version (1.2.3, 1.2.4-git20260102030405)
	SemVer   string // krew's: v and the package version
	Homepage string
	Summary  string
	// Description is several lines of prose.
	Description string
	Archives    []archiveRef // every one built, in allTargets' order
	// By GOARCH (pointers: a template's "with" takes a missing one, nil,
	// as false, where a zero struct would be true).
	Darwin, Linux, Windows map[string]*archiveRef
	byOS                   map[string]map[string]*archiveRef // the three above
}

func newManifestData(s Stamp, archives []archiveRef) manifestData {
	base, pre := s.PackageVersion()
	version := base
	if pre != "" {
		version += "-" + pre
	}
	d := manifestData{
		Tag: s.Version, Version: version, SemVer: s.SemVer(),
		Homepage: homepage, Summary: summary, Description: description,
		Archives: archives,
		Darwin:   map[string]*archiveRef{}, Linux: map[string]*archiveRef{}, Windows: map[string]*archiveRef{},
	}
	d.byOS = map[string]map[string]*archiveRef{"darwin": d.Darwin, "linux": d.Linux, "windows": d.Windows}
	for _, a := range archives {
		d.byOS[a.OS][a.Arch] = &a
	}
	return d
}

// A manifest is one package manager's file, rendered when the archives of
// at least one of its platforms were built.
type manifest struct {
	file     string   // its name in dist/
	template string   // under templates/
	oses     []string // the platforms it installs on
}

var manifests = []manifest{
	{"kubefwd.krew.yaml", "krew.yaml.tmpl", []string{"linux", "darwin", "windows"}},
	{"kubefwd.rb", "homebrew.rb.tmpl", []string{"darwin", "linux"}},
	{"kubefwd.scoop.json", "scoop.json.tmpl", []string{"windows"}},
}

// renderManifests renders each manifest whose platforms were built, by
// file name.
func renderManifests(d manifestData) (map[string][]byte, error) {
	tmpl, err := template.New("").Funcs(template.FuncMap{
		"json":   jsonString,
		"ruby":   rubyString,
		"indent": indent,
	}).Option("missingkey=zero").ParseFS(templateFS, "templates/*.tmpl")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, m := range manifests {
		built := false
		for _, goos := range m.oses {
			built = built || len(d.byOS[goos]) > 0
		}
		if !built {
			continue
		}
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, m.template, d); err != nil {
			return nil, fmt.Errorf("render %s: %w", m.file, err)
		}
		out[m.file] = b.Bytes()
	}
	return out, nil
}

// jsonString is s as a JSON string.
func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// rubyString is s as a Ruby double-quoted string: JSON's escapes are
// Ruby's, and "#" is escaped so that nothing interpolates.
func rubyString(s string) (string, error) {
	j, err := jsonString(s)
	return strings.ReplaceAll(j, "#", `\#`), err
}

// indent indents every line of s by n spaces.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}
