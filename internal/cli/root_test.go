package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb strings.Builder
	code = Main(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, errs := run("version")
	if code != ExitOK || !strings.HasPrefix(out, "kubefwd ") || errs != "" {
		t.Fatalf("version: code %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, field := range []string{"commit:", "date:", "go:", "os/arch:"} {
		if !strings.Contains(out, "\n  "+field) {
			t.Errorf("version lacks %q: %q", field, out)
		}
	}
	code, out, _ = run("version", "--short")
	if code != ExitOK || strings.TrimSpace(out) != Version() {
		t.Fatalf("version --short: code %d, stdout %q", code, out)
	}
}

func TestBuildInfoWrite(t *testing.T) {
	var b strings.Builder
	BuildInfo{Version: "v1.2.3", Commit: "abc123", Date: "2026-01-02T03:04:05Z", Go: "go1.26.7", Platform: "linux/arm"}.write(&b)
	want := "kubefwd v1.2.3\n  commit:   abc123\n  date:     2026-01-02T03:04:05Z\n  go:       go1.26.7\n  os/arch:  linux/arm\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"version", "extra"},
		{"version", "--no-such-flag"},
		{"no-such-verb"},
		{"relay", "--listen", "127.0.0.1:notaport"},
		{"relay", "--idle-exit", "-1s"},
		{"relay", "extra"},
	} {
		code, out, errs := run(args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
		if out != "" || !strings.HasPrefix(errs, "kubefwd: ") || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: want one line on stderr and nothing on stdout, got stdout %q stderr %q", args, out, errs)
		}
	}
}

// The full-screen view refuses to start without a terminal, as a usage
// error in one line, before anything is written.
func TestViewNeedsATerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	stdin := os.Stdin
	os.Stdin = null // whatever terminal the test runs in
	defer func() { os.Stdin = stdin }()
	hostsPath := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostsPath, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ui"}, {"svc", "--tui", "-n", "demo", "--hosts-path", hostsPath}} {
		code, out, errs := run(args...)
		if code != ExitUsage || out != "" || !strings.Contains(errs, "needs a terminal") || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if data, _ := os.ReadFile(hostsPath); string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("the hosts file changed: %q", data)
	}
}

// The relay ends by itself, successfully, when nobody uses it, so that a
// relay pod whose kubefwd vanished goes away.
func TestRelayEndsWhenIdle(t *testing.T) {
	code, _, errs := run("relay", "--listen", "127.0.0.1:0", "--idle-exit", "300ms")
	if code != ExitOK || !strings.Contains(errs, "idle limit") {
		t.Errorf("exit %d, log %q", code, errs)
	}
}
