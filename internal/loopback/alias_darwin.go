package loopback

import (
	"fmt"
	"os/exec"
	"strings"
)

const needAliases = true

// runIfconfig runs /sbin/ifconfig by absolute path (never one found on
// $PATH, as root), and puts its output in the error.
func runIfconfig(args ...string) error {
	out, err := exec.Command("/sbin/ifconfig", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ifconfig %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
