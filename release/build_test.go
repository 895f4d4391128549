package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		err  bool
	}{
		{"", "linux/amd64 linux/arm64 linux/arm darwin/amd64 darwin/arm64 windows/amd64 windows/arm64", false},
		{"darwin/arm64 linux/amd64", "linux/amd64 darwin/arm64", false},
		{"linux/amd64,linux/amd64", "linux/amd64", false},
		{" windows/arm64\n", "windows/arm64", false},
		{"linux/386", "", true},
		{"linux", "", true},
		{"freebsd/amd64", "", true},
	} {
		got, err := parseTargets(c.in)
		if (err != nil) != c.err {
			t.Errorf("%q: error %v", c.in, err)
			continue
		}
		var names []string
		for _, tg := range got {
			names = append(names, tg.String())
		}
		if strings.Join(names, " ") != c.want {
			t.Errorf("%q: %q, want %q", c.in, names, c.want)
		}
	}
}

func TestBuildEnv(t *testing.T) {
	base := []string{"PATH=/bin", "CGO_ENABLED=1", "GOARM=5", "GOAMD64=v3", "GOFLAGS=-mod=mod"}
	for _, c := range []struct {
		target Target
		want   []string
	}{
		{Target{"linux", "arm"}, []string{"PATH=/bin", "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}},
		{Target{"darwin", "amd64"}, []string{"PATH=/bin", "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOOS=darwin", "GOARCH=amd64", "GOAMD64=v1"}},
		{Target{"windows", "arm64"}, []string{"PATH=/bin", "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOOS=windows", "GOARCH=arm64", "GOARM64=v8.0"}},
	} {
		if got := buildEnv(base, c.target); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.target, got, c.want)
		}
	}
	if (Target{"windows", "amd64"}).exe() != "kubefwd.exe" || (Target{"linux", "amd64"}).exe() != "kubefwd" {
		t.Error("exe names")
	}
}

func TestBuildArgs(t *testing.T) {
	got := buildArgs(Stamp{Version: "v1"}, "/out/kubefwd")
	for _, want := range []string{"-trimpath", "-buildvcs=false", "./cmd/kubefwd"} {
		if !slices.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if i := slices.Index(got, "-ldflags"); i < 0 || !strings.HasPrefix(got[i+1], "-s -w -buildid= ") {
		t.Errorf("ldflags: %q", got)
	}
}
