// Package needs is how a test says it cannot run here: it skips, unless
// KUBEFWD_REQUIRE_DEVCLUSTER=1 (as CI sets), where a test that cannot run
// fails instead, so a green CI run means every test ran.
package needs

import (
	"fmt"
	"os"
	"testing"
)

// Env, when "1", turns every skip through this package into a failure.
const Env = "KUBEFWD_REQUIRE_DEVCLUSTER"

// Skip skips t, or fails it when Env forbids skipping.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(Env) == "1" {
		t.Fatalf("this test cannot run here, and %s=1 forbids skipping it: %s", Env, msg)
	}
	t.Skip("skipped: " + msg)
}

// Root skips t (or fails it, see Skip) unless it runs as root; why says
// what root is needed for.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root %s", why)
	}
}
