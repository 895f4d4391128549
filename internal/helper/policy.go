package helper

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/kubefwd/kubefwd/internal/names"
)

// Policy decides which names the helper publishes for its users. Every
// user of the machine resolves what the hosts file says, so by default an
// allowed user cannot claim names other programs rely on: names under a
// public top-level domain (github.com, login.microsoftonline.com,
// foo.co.uk, web.demo.dev), proxy and tunnel discovery (wpad, isatap) and
// the machine's own names. Cluster names (svc, svc.ns, svc.ns.svc,
// svc.ns.svc.cluster.local, names suffixed with a context such as
// web.demo.kwok-prod) end in labels that are not public top-level domains
// and pass. The administrator lifts the policy for names under
// AllowDomains (kubefwd helper install --allow-domain dev).
type Policy struct {
	// AllowDomains are lower-case domains, without dots at either end,
	// under which every valid name is published.
	AllowDomains []string
	// MachineNames returns the machine's own names, lower case.
	MachineNames func() []string
}

// Reason says why name, a valid DNS name, is not published; "" means it is.
func (p Policy) Reason(name string) string { return p.Reasons()(name) }

// Reasons is Reason with the machine's names looked up once, for checking
// many names.
func (p Policy) Reasons() func(name string) string {
	machine := map[string]bool{}
	if p.MachineNames != nil {
		for _, m := range p.MachineNames() {
			machine[m] = true
		}
	}
	return func(name string) string {
		n := strings.ToLower(name)
		for _, d := range p.AllowDomains {
			if n == d || strings.HasSuffix(n, "."+d) {
				return ""
			}
		}
		first, _, _ := strings.Cut(n, ".")
		if first == "wpad" || first == "isatap" {
			return "wpad and isatap names steer proxy and tunnel discovery for every program on this machine; " + allowHint
		}
		if tld, ok := publicTLD(n); ok {
			return fmt.Sprintf("it looks like an internet name (.%s is a public top-level domain); %s", tld, allowHint)
		}
		if machine[n] {
			return "it is this machine's own name; " + allowHint
		}
		return ""
	}
}

const allowHint = "the kubefwd helper publishes such names only under a domain its administrator allows (kubefwd helper install --allow-domain)"

// publicTLD reports whether name has more than one label and ends in a
// top-level domain of the public suffix list's ICANN section. Its last
// label alone is looked up, so names under private suffixes (x.github.io)
// count by their TLD too; a single label is not an internet name (ICANN
// forbids names without a dot), so a Service called app keeps its name.
func publicTLD(name string) (string, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", false
	}
	tld := name[i+1:]
	suffix, icann := publicsuffix.PublicSuffix(tld)
	return tld, icann && suffix == tld
}

// ParseAllowDomains checks --allow-domain values and returns them in the
// form Policy wants.
func ParseAllowDomains(in []string) ([]string, error) {
	var out []string
	for _, d := range in {
		c := strings.ToLower(strings.Trim(d, "."))
		if err := names.CheckHostname(c); err != nil {
			return nil, fmt.Errorf("--allow-domain %q: %w", clip(d), err)
		}
		out = append(out, c)
	}
	return out, nil
}

// MachineNames returns a function listing the machine's own names: its
// host name, in full and short, the one in /etc/hostname (a sandboxed
// helper keeps the host name it started with; the file follows changes),
// and the names hostsPath maps to 127.0.0.1, 127.0.1.1 or ::1 outside
// kubefwd's blocks.
func MachineNames(hostsPath string) func() []string {
	return func() []string {
		var out []string
		add := func(n string) {
			n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
			if n == "" {
				return
			}
			out = append(out, n)
			if short, _, ok := strings.Cut(n, "."); ok {
				out = append(out, short)
			}
		}
		if h, err := os.Hostname(); err == nil {
			add(h)
		}
		if data, err := os.ReadFile("/etc/hostname"); err == nil {
			line, _, _ := strings.Cut(string(data), "\n")
			add(line)
		}
		if data, err := os.ReadFile(hostsPath); err == nil {
			for _, n := range selfNames(data) {
				add(n)
			}
		}
		return out
	}
}

var selfAddrs = []netip.Addr{
	netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.1.1"), netip.MustParseAddr("::1"),
}

// selfNames lists the names hosts content maps to the machine's own
// addresses, outside kubefwd blocks.
func selfNames(content []byte) []string {
	var out []string
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "# kubefwd begin "):
			inBlock = true
			continue
		case strings.HasPrefix(line, "# kubefwd end "):
			inBlock = false
			continue
		case inBlock:
			continue
		}
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil {
			continue
		}
		for _, self := range selfAddrs {
			if a == self {
				out = append(out, fields[1:]...)
			}
		}
	}
	return out
}
