package needs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// childEnv marks the child process TestSkip starts.
const childEnv = "KUBEFWD_NEEDS_TEST_CHILD"

// TestCannotRun plays a test that cannot run, in TestSkip's child process;
// on its own it does nothing.
func TestCannotRun(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		Skip(t, "the reason")
	}
}

// A skip is a skip, unless Env says every test must run: then it fails.
func TestSkip(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env      string
		wantFail bool
		want     string
	}{
		{"", false, "skipped: the reason"},
		{"1", true, "KUBEFWD_REQUIRE_DEVCLUSTER=1 forbids skipping it: the reason"},
	} {
		cmd := exec.Command(self, "-test.run=^TestCannotRun$", "-test.v")
		cmd.Env = append(os.Environ(), Env+"="+tc.env, childEnv+"=1")
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%q: %v, want failure %v and %q in:\n%s", Env, tc.env, err, tc.wantFail, tc.want, out)
		}
	}
}
