package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Target is one GOOS/GOARCH kubefwd is released for.
type Target struct{ OS, Arch string }

func (t Target) String() string { return t.OS + "/" + t.Arch }

// exe is the binary's file name.
func (t Target) exe() string {
	if t.OS == "windows" {
		return "kubefwd.exe"
	}
	return "kubefwd"
}

// allTargets are the released platforms (linux/arm is ARMv7, GOARM=7).
var allTargets = []Target{
	{"linux", "amd64"}, {"linux", "arm64"}, {"linux", "arm"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// parseTargets reads "linux/amd64 darwin/arm64" (spaces or commas); empty
// is every target. Each must be one of allTargets; the result is in
// allTargets' order, once each.
func parseTargets(s string) ([]Target, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return slices.Clone(allTargets), nil
	}
	want := map[Target]bool{}
	for _, f := range fields {
		goos, goarch, _ := strings.Cut(f, "/")
		t := Target{goos, goarch}
		if !slices.Contains(allTargets, t) {
			var names []string
			for _, a := range allTargets {
				names = append(names, a.String())
			}
			return nil, fmt.Errorf("target %q is not one kubefwd is released for (%s)", f, strings.Join(names, " "))
		}
		want[t] = true
	}
	var out []Target
	for _, t := range allTargets {
		if want[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

// buildEnv is the environment of a release build: the caller's, with
// everything that changes the output fixed — no cgo, the target, and
// the baseline instruction set of each architecture.
func buildEnv(base []string, t Target) []string {
	env := slices.DeleteFunc(slices.Clone(base), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOARM", "GOAMD64", "GOARM64", "GOEXPERIMENT":
			return true
		}
		return false
	})
	env = append(env, "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
	switch t.Arch {
	case "arm":
		env = append(env, "GOARM=7")
	case "amd64":
		env = append(env, "GOAMD64=v1")
	case "arm64":
		env = append(env, "GOARM64=v8.0")
	}
	return env
}

// buildArgs are the go build arguments of a release build: no file system
// paths in the binary (-trimpath), no VCS stamp of the go command's (the
// commit is stamped by ldflags, and a dirty tree must not change the
// bytes of a build from the same sources), stripped, no build id.
func buildArgs(s Stamp, out string) []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", s.ldflags(), "-o", out, "./cmd/kubefwd"}
}

// build compiles kubefwd for t into out.
func build(ctx context.Context, goTool, repo string, s Stamp, t Target, out string) error {
	cmd := exec.CommandContext(ctx, goTool, buildArgs(s, out)...)
	cmd.Dir = repo
	cmd.Env = buildEnv(os.Environ(), t)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", t, err)
	}
	return nil
}
