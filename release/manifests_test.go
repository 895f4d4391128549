package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func testArchives(targets ...Target) []archiveRef {
	var out []archiveRef
	for _, t := range targets {
		name := "kubefwd_1.2.3_" + t.OS + "_" + t.Arch + ".tar.gz"
		out = append(out, archiveRef{OS: t.OS, Arch: t.Arch, Exe: t.exe(), Name: name,
			URL: "https://example.com/v1.2.3/" + name, SHA256: strings.Repeat(t.Arch[:1], 64)})
	}
	return out
}

func TestRenderManifests(t *testing.T) {
	s := Stamp{Version: "v1.2.3", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	got, err := renderManifests(newManifestData(s, testArchives(allTargets...)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"kubefwd.krew.yaml", "kubefwd.rb", "kubefwd.scoop.json"}; !slices.Equal(names, want) {
		t.Fatalf("rendered %q, want %q", names, want)
	}

	krew := string(got["kubefwd.krew.yaml"])
	for _, want := range []string{
		"\n  name: fwd\n", "\n  version: v1.2.3\n",
		"        os: linux\n        arch: arm\n    uri: https://example.com/v1.2.3/kubefwd_1.2.3_linux_arm.tar.gz\n",
		"        os: windows\n        arch: arm64\n", "    bin: kubefwd.exe\n",
		"  description: |\n    kubefwd makes every Service",
	} {
		if !strings.Contains(krew, want) {
			t.Errorf("krew manifest lacks %q:\n%s", want, krew)
		}
	}
	if strings.Count(krew, "- selector:") != 7 {
		t.Errorf("krew manifest has %d platforms, want 7", strings.Count(krew, "- selector:"))
	}

	brew := string(got["kubefwd.rb"])
	for _, want := range []string{
		"class Kubefwd < Formula\n", `  version "1.2.3"`,
		"  on_macos do\n    on_arm do\n      url \"https://example.com/v1.2.3/kubefwd_1.2.3_darwin_arm64.tar.gz\"",
		"      if Hardware::CPU.is_64_bit?\n        url \"https://example.com/v1.2.3/kubefwd_1.2.3_linux_arm64.tar.gz\"",
		"      unless Hardware::CPU.is_64_bit?\n        url \"https://example.com/v1.2.3/kubefwd_1.2.3_linux_arm.tar.gz\"",
		`bash_completion.install "completions/kubefwd.bash" => "kubefwd"`,
		`assert_equal "v1.2.3", shell_output("#{bin}/kubefwd version --short").strip`,
	} {
		if !strings.Contains(brew, want) {
			t.Errorf("formula lacks %q:\n%s", want, brew)
		}
	}
	if strings.Contains(brew, "windows") {
		t.Errorf("formula names a Windows archive:\n%s", brew)
	}

	var scoop struct {
		Version      string
		Bin          string
		Architecture map[string]struct{ URL, Hash string }
	}
	if err := json.Unmarshal(got["kubefwd.scoop.json"], &scoop); err != nil {
		t.Fatalf("scoop manifest: %v\n%s", err, got["kubefwd.scoop.json"])
	}
	if scoop.Version != "1.2.3" || scoop.Bin != "kubefwd.exe" || len(scoop.Architecture) != 2 ||
		scoop.Architecture["64bit"].URL != "https://example.com/v1.2.3/kubefwd_1.2.3_windows_amd64.tar.gz" ||
		scoop.Architecture["arm64"].Hash != strings.Repeat("a", 64) {
		t.Errorf("scoop manifest: %+v", scoop)
	}
}

// A partial build renders the manifests of the platforms it built, with
// only those.
func TestRenderManifestsPartial(t *testing.T) {
	s := Stamp{Version: "abc1234-dirty", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	got, err := renderManifests(newManifestData(s, testArchives(Target{"linux", "amd64"}, Target{"windows", "arm64"})))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("rendered %d manifests", len(got))
	}
	if brew := string(got["kubefwd.rb"]); strings.Contains(brew, "on_macos") || strings.Contains(brew, "on_arm") || !strings.Contains(brew, `version "0.0.0-git20260102030405"`) {
		t.Errorf("formula:\n%s", brew)
	}
	if krew := string(got["kubefwd.krew.yaml"]); !strings.Contains(krew, "version: v0.0.0-git20260102030405\n") {
		t.Errorf("krew:\n%s", krew)
	}
	var scoop map[string]any
	if err := json.Unmarshal(got["kubefwd.scoop.json"], &scoop); err != nil {
		t.Fatalf("scoop manifest: %v\n%s", err, got["kubefwd.scoop.json"])
	}
	if arch := scoop["architecture"].(map[string]any); len(arch) != 1 || arch["arm64"] == nil {
		t.Errorf("scoop architectures: %v", arch)
	}

	got, err = renderManifests(newManifestData(s, testArchives(Target{"linux", "arm"})))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["kubefwd.scoop.json"]; ok || len(got) != 2 {
		t.Errorf("linux only rendered %d manifests, scoop's among them: %v", len(got), ok)
	}
}

func TestTemplateFuncs(t *testing.T) {
	if s, _ := rubyString(`a "b" #{x}`); s != `"a \"b\" \#{x}"` {
		t.Errorf("ruby: %s", s)
	}
	if s := indent(2, "a\nb\n"); s != "  a\n  b" {
		t.Errorf("indent: %q", s)
	}
}
