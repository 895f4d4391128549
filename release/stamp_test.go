package main

import (
	"testing"
	"time"
)

func TestPackageVersion(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		version, base, pre, semver string
	}{
		{"v1.2.3", "1.2.3", "", "v1.2.3"},
		{"1.2.3", "1.2.3", "", "v1.2.3"},
		{"v1.2.0-rc.1", "1.2.0", "rc1", "v1.2.0-rc1"},
		{"v1.2.3-4-gabc1234", "1.2.4", "git20260102030405", "v1.2.4-git20260102030405"},
		{"v1.2.3-dirty", "1.2.4", "git20260102030405", "v1.2.4-git20260102030405"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.4", "git20260102030405", "v1.2.4-git20260102030405"},
		{"v1.2.0-rc.1-4-gabc1234", "1.2.0", "git20260102030405", "v1.2.0-git20260102030405"},
		{"v1.9.9-10-g0123456", "1.9.10", "git20260102030405", "v1.9.10-git20260102030405"},
		{"abc1234", "0.0.0", "git20260102030405", "v0.0.0-git20260102030405"},
		{"abc1234-dirty", "0.0.0", "git20260102030405", "v0.0.0-git20260102030405"},
		{"nightly", "0.0.0", "git20260102030405", "v0.0.0-git20260102030405"},
	} {
		s := Stamp{Version: c.version, Time: at}
		base, pre := s.PackageVersion()
		if base != c.base || pre != c.pre {
			t.Errorf("%s: package version %q, %q; want %q, %q", c.version, base, pre, c.base, c.pre)
		}
		if got := s.SemVer(); got != c.semver {
			t.Errorf("%s: semver %q, want %q", c.version, got, c.semver)
		}
	}
}

func TestLdflags(t *testing.T) {
	s := Stamp{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	want := "-s -w -buildid=" +
		" -X github.com/kubefwd/kubefwd/internal/cli.version=v1.2.3" +
		" -X github.com/kubefwd/kubefwd/internal/cli.commit=0123456789abcdef0123456789abcdef01234567" +
		" -X github.com/kubefwd/kubefwd/internal/cli.date=2026-01-02T03:04:05Z"
	if got := s.ldflags(); got != want {
		t.Errorf("ldflags\n got %s\nwant %s", got, want)
	}
	if got := s.FileVersion(); got != "1.2.3" {
		t.Errorf("file version %q", got)
	}
}

func TestValidVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"v1.2.3": true, "abc1234-dirty": true, "1.2.3+meta": true, "0.0.0~git1": true,
		"": false, "-x": false, "1 2": false, `v1"`: false, "v1/2": false, "v1;rm": false,
	} {
		if validVersion.MatchString(v) != ok {
			t.Errorf("%q: valid %v, want %v", v, !ok, ok)
		}
	}
}
