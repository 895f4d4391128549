package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// cliPackage is where the version variables live (internal/cli/version.go).
const cliPackage = "github.com/kubefwd/kubefwd/internal/cli"

// Stamp is what a build is stamped with: all of it from git, none of it
// from the clock, so that the same commit builds the same bytes.
type Stamp struct {
	Version string    // `git describe --tags --always --dirty`, or VERSION=
	Commit  string    // the full commit hash
	Time    time.Time // the commit's time (committer date), UTC
}

// readStamp asks git in repo for the commit and its time, and for the
// version unless one is given.
func readStamp(ctx context.Context, repo, version string) (Stamp, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	var s Stamp
	var err error
	if s.Commit, err = git("rev-parse", "HEAD"); err != nil {
		return Stamp{}, err
	}
	secs, err := git("log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return Stamp{}, err
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return Stamp{}, fmt.Errorf("git gave %q for the commit time, not seconds", secs)
	}
	s.Time = time.Unix(n, 0).UTC()
	if s.Version = version; s.Version == "" {
		if s.Version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
			return Stamp{}, err
		}
	}
	if !validVersion.MatchString(s.Version) {
		return Stamp{}, fmt.Errorf("version %q must be letters, digits and . _ + ~ - only (it names files and goes into the binary)", s.Version)
	}
	return s, nil
}

var validVersion = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+~-]*$`)

// ldflags strips the symbol table and DWARF, clears the build id (the
// content hash the go command would put there differs with the build
// environment) and stamps version, commit and date.
func (s Stamp) ldflags() string {
	return strings.Join([]string{
		"-s", "-w", "-buildid=",
		"-X", cliPackage + ".version=" + s.Version,
		"-X", cliPackage + ".commit=" + s.Commit,
		"-X", cliPackage + ".date=" + s.Time.Format(time.RFC3339),
	}, " ")
}

// FileVersion is the version in artifact names: without a tag's "v".
func (s Stamp) FileVersion() string { return strings.TrimPrefix(s.Version, "v") }

// PackageVersion is the version package managers (deb, rpm, apk, brew,
// scoop) and krew order releases by: a tag vX.Y.Z is X.Y.Z; a tag with a
// pre-release (v1.2.0-rc.1) keeps it, letters and digits only (rc1: apk
// takes no dots there); anything else — commits after a tag, a dirty tree,
// no tag at all — is a development build of the next patch release, dated
// by its commit: v1.2.3-4-gabc1234 is 1.2.4 with pre-release
// git20260102030405, which sorts after 1.2.3 and before 1.2.4.
func (s Stamp) PackageVersion() (base, pre string) {
	dev := "git" + s.Time.UTC().Format("20060102150405")
	v, dirty := strings.CutSuffix(s.Version, "-dirty")
	m := describeRE.FindStringSubmatch(v)
	if m == nil {
		return "0.0.0", dev
	}
	major, minor, patch := m[1], m[2], m[3]
	tagPre, commits := m[4], m[5]
	if commits == "" && !dirty {
		return major + "." + minor + "." + patch, alnum(tagPre)
	}
	if tagPre == "" {
		p, _ := strconv.Atoi(patch)
		patch = strconv.Itoa(p + 1)
	}
	return major + "." + minor + "." + patch, dev
}

// SemVer is PackageVersion as a semantic version with a "v" (krew).
func (s Stamp) SemVer() string {
	base, pre := s.PackageVersion()
	if pre == "" {
		return "v" + base
	}
	return "v" + base + "-" + pre
}

// describeRE matches git describe output for a vX.Y.Z tag (less -dirty):
// an optional pre-release, then -N-gHASH when HEAD is N commits past it.
var describeRE = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.]+))?(?:-(\d+)-g[0-9a-f]+)?$`)

func alnum(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, s)
}
