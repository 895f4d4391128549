package cli

import (
	"context"
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
	code, out, _ = run("version", "--short")
	if code != ExitOK || strings.TrimSpace(out) != Version() {
		t.Fatalf("version --short: code %d, stdout %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"version", "extra"},
		{"version", "--no-such-flag"},
		{"no-such-verb"},
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
