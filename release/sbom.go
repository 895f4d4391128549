package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// The SBOM is CycloneDX 1.5 JSON, written here from the module list the
// go command recorded in the built binary (debug/buildinfo): exactly the
// modules linked into that binary, with their go.sum hashes, not the
// module graph's test and tool dependencies. Written by us rather than by
// cyclonedx-gomod so that it is reproducible (no random serial number, no
// clock: the timestamp is the commit's) and needs nothing more to run;
// CycloneDX rather than SPDX because its component model maps one to one
// onto Go modules and package URLs (pkg:golang/…).

type cdxBOM struct {
	BOMFormat    string          `json:"bomFormat"`
	SpecVersion  string          `json:"specVersion"`
	Version      int             `json:"version"`
	Metadata     cdxMetadata     `json:"metadata"`
	Components   []cdxComponent  `json:"components"`
	Dependencies []cdxDependency `json:"dependencies"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type       string        `json:"type"`
	BOMRef     string        `json:"bom-ref,omitempty"`
	Name       string        `json:"name"`
	Version    string        `json:"version,omitempty"`
	PURL       string        `json:"purl,omitempty"`
	Hashes     []cdxHash     `json:"hashes,omitempty"`
	Properties []cdxProperty `json:"properties,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cdxDependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

// sbomFile reads the module list of the binary at path, or of the
// kubefwd binary in the archive (.tar.gz, .zip) at path.
func sbomFile(path string, s Stamp) ([]byte, error) {
	var info *debug.BuildInfo
	var err error
	if strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".zip") {
		var bin []byte
		if bin, err = programInArchive(path); err == nil {
			info, err = buildinfo.Read(bytes.NewReader(bin))
		}
	} else {
		info, err = buildinfo.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read the module list of %s: %w", path, err)
	}
	return sbom(info, s)
}

// programInArchive is the content of kubefwd (or kubefwd.exe) in a
// release archive.
func programInArchive(path string) ([]byte, error) {
	isProgram := func(name string) bool { return name == "kubefwd" || name == "kubefwd.exe" }
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		for _, f := range zr.File {
			if isProgram(f.Name) {
				r, err := f.Open()
				if err != nil {
					return nil, err
				}
				defer r.Close()
				return io.ReadAll(r)
			}
		}
		return nil, errors.New("it holds no kubefwd program")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("it holds no kubefwd program")
		}
		if err != nil {
			return nil, err
		}
		if isProgram(h.Name) {
			return io.ReadAll(tr)
		}
	}
}

// sbom renders the CycloneDX document of a binary's build info; the main
// module gets the stamped version (a release build's module version is
// "(devel)").
func sbom(info *debug.BuildInfo, s Stamp) ([]byte, error) {
	app := cdxComponent{
		Type: "application", Name: info.Main.Path, Version: s.Version,
		PURL: purl(info.Main.Path, s.Version),
		Properties: []cdxProperty{
			{Name: "go", Value: info.GoVersion},
			{Name: "commit", Value: s.Commit},
		},
	}
	app.BOMRef = app.PURL
	for _, setting := range info.Settings {
		switch setting.Key {
		case "GOOS", "GOARCH", "GOARM", "CGO_ENABLED", "-trimpath":
			app.Properties = append(app.Properties, cdxProperty{Name: "build:" + setting.Key, Value: setting.Value})
		}
	}
	bom := cdxBOM{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		Metadata: cdxMetadata{
			Timestamp: s.Time.UTC().Format(time.RFC3339),
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "kubefwd release tool (make dist)"}}},
			Component: app,
		},
		Components: []cdxComponent{},
	}
	top := cdxDependency{Ref: app.BOMRef, DependsOn: []string{}}
	for _, m := range info.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		c := cdxComponent{Type: "library", Name: m.Path, Version: m.Version, PURL: purl(m.Path, m.Version)}
		c.BOMRef = c.PURL
		if h, ok := h1SHA256(m.Sum); ok {
			c.Hashes = []cdxHash{{Alg: "SHA-256", Content: h}}
		}
		bom.Components = append(bom.Components, c)
		top.DependsOn = append(top.DependsOn, c.BOMRef)
	}
	// The binary records which modules it links, not who needs whom: all
	// of them hang off the main module.
	bom.Dependencies = []cdxDependency{top}
	out, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// purl is a Go module's package URL.
func purl(path, version string) string {
	p := "pkg:golang/" + path
	if version != "" {
		p += "@" + version
	}
	return p
}

// h1SHA256 turns a go.sum hash ("h1:" and the base64 SHA-256 of the
// module's file list) into hex, the form CycloneDX takes.
func h1SHA256(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", false
	}
	return hex.EncodeToString(raw), true
}
