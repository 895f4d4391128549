package hosts

import (
	"fmt"
	"os/exec"
)

// FlushDNSCache makes macOS re-read the hosts file: its resolver caches
// answers, old entries included.
func FlushDNSCache() error {
	for _, args := range [][]string{{"/usr/bin/dscacheutil", "-flushcache"}, {"/usr/bin/killall", "-HUP", "mDNSResponder"}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w: %s", args, err, out)
		}
	}
	return nil
}
