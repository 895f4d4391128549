package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"
)

func TestSBOM(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.7",
		Main:      debug.Module{Path: "github.com/kubefwd/kubefwd", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "github.com/spf13/cobra", Version: "v1.10.2", Sum: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
			{Path: "example.com/old", Version: "v1.0.0", Sum: "h1:bad", Replace: &debug.Module{Path: "example.com/new", Version: "v1.1.0"}},
		},
		Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm"}, {Key: "GOARM", Value: "7"}, {Key: "-ldflags", Value: "-s -w"}},
	}
	s := Stamp{Version: "v1.2.3", Commit: "abc", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a, err := sbom(info, s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sbom(info, s)
	if string(a) != string(b) {
		t.Error("two renderings differ")
	}
	var bom cdxBOM
	if err := json.Unmarshal(a, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.5" || bom.Metadata.Timestamp != "2026-01-02T03:04:05Z" {
		t.Errorf("header: %+v", bom)
	}
	if m := bom.Metadata.Component; m.PURL != "pkg:golang/github.com/kubefwd/kubefwd@v1.2.3" || m.Version != "v1.2.3" {
		t.Errorf("main component: %+v", m)
	}
	if len(bom.Components) != 2 {
		t.Fatalf("components: %+v", bom.Components)
	}
	cobra := bom.Components[0]
	// The sum above is the SHA-256 of nothing, in base64.
	if cobra.PURL != "pkg:golang/github.com/spf13/cobra@v1.10.2" || len(cobra.Hashes) != 1 ||
		cobra.Hashes[0] != (cdxHash{Alg: "SHA-256", Content: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}) {
		t.Errorf("cobra: %+v", cobra)
	}
	if r := bom.Components[1]; r.Name != "example.com/new" || r.Version != "v1.1.0" || r.Hashes != nil {
		t.Errorf("replaced module: %+v", r)
	}
	if len(bom.Dependencies) != 1 || len(bom.Dependencies[0].DependsOn) != 2 {
		t.Errorf("dependencies: %+v", bom.Dependencies)
	}
	props := map[string]string{}
	for _, p := range bom.Metadata.Component.Properties {
		props[p.Name] = p.Value
	}
	if props["build:GOARM"] != "7" || props["go"] != "go1.26.7" || props["-ldflags"] != "" {
		t.Errorf("properties: %v", props)
	}
}

func TestH1SHA256(t *testing.T) {
	for sum, want := range map[string]string{
		"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=": "0000000000000000000000000000000000000000000000000000000000000000",
		"h1:bad": "",
		"":       "",
		"h2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=": "",
	} {
		got, ok := h1SHA256(sum)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", sum, got, ok, want)
		}
	}
}

// GoReleaser hands the SBOM step archives: the program is found inside.
func TestProgramInArchive(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		exe   string
		write func(io.Writer, []entry, time.Time) error
	}{{"a.tar.gz", "kubefwd", writeTarGz}, {"a.zip", "kubefwd.exe", writeZip}} {
		var b bytes.Buffer
		if err := c.write(&b, []entry{{Name: "README.md", Mode: 0o644, Data: []byte("r")}, {Name: c.exe, Mode: 0o755, Data: []byte("program")}}, testTime); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := programInArchive(p); err != nil || string(got) != "program" {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
	}
	var b bytes.Buffer
	if err := writeTarGz(&b, []entry{{Name: "README.md", Mode: 0o644}}, testTime); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "empty.tar.gz")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := programInArchive(p); err == nil {
		t.Error("an archive without the program: no error")
	}
}
