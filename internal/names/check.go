package names

import (
	"fmt"
	"strings"
)

// MaxHostname and MaxLabel are DNS's limits on a name and on one of its
// dot-separated labels.
const (
	MaxHostname = 253
	MaxLabel    = 63
)

// CheckHostname accepts a name a hosts file line may safely carry and a
// resolver will look up: dot-separated labels of 1 to 63 letters, digits
// and '-', none starting or ending with '-', 253 characters in all.
// localhost and *.localhost are refused: resolvers answer those
// themselves, and a hosts line claiming them would take the machine's own
// name away from it. The error quotes the name shortened and made
// printable, so a hostile one cannot forge log lines.
func CheckHostname(n string) error {
	if err := checkSyntax(n); err != nil {
		return err
	}
	if IsLocalhost(n) {
		return fmt.Errorf("name %q is reserved for the machine itself", n)
	}
	return nil
}

// checkSyntax is the DNS part of CheckHostname (and all of Valid).
func checkSyntax(n string) error {
	if n == "" || len(n) > MaxHostname {
		return fmt.Errorf("name %q: want 1 to %d characters", clip(n), MaxHostname)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > MaxLabel {
			return fmt.Errorf("name %q: each dot-separated part must have 1 to %d characters", clip(n), MaxLabel)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("name %q: a part may not start or end with '-'", clip(n))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("name %q: only letters, digits, '-' and '.' are allowed", clip(n))
			}
		}
	}
	return nil
}

// IsLocalhost reports whether n is localhost or a name under it, in any
// case.
func IsLocalhost(n string) bool {
	l := strings.ToLower(strings.TrimSuffix(n, "."))
	return l == "localhost" || strings.HasSuffix(l, ".localhost")
}

// clip shortens a name before it is quoted in an error; %q then makes
// control characters visible.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
