package helper

import (
	"fmt"

	"github.com/kubefwd/kubefwd/internal/hosts"
	"github.com/kubefwd/kubefwd/internal/names"
)

// maxSkipped bounds how many skipped names one answer lists; the rest are
// counted in a last item.
const maxSkipped = 1000

// checked is the outcome of checking a hosts request entry by entry.
type checked struct {
	entries []hosts.Entry
	bytes   int // of the hosts lines entries make
	skipped []hosts.Skipped
	more    int // skipped names beyond maxSkipped
	seen    map[string]bool
}

func (c *checked) skip(name, reason string) {
	if c.seen[name] {
		return
	}
	if len(c.skipped) >= maxSkipped {
		c.more++
		return
	}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[name] = true
	c.skipped = append(c.skipped, hosts.Skipped{Name: clip(name), Reason: reason})
}

// report is the skipped names as an answer carries them.
func (c *checked) report() []hosts.Skipped {
	if c.more == 0 {
		return c.skipped
	}
	return append(c.skipped, hosts.Skipped{Name: "…", Reason: fmt.Sprintf("%d more names were skipped", c.more)})
}

// checkEntries keeps what may be published and skips the rest one by one,
// each with its reason: an entry with a bad address loses all its names, a
// bad name only itself, and once the entries' lines would pass budget
// bytes the remaining entries are skipped with overBudget as the reason. reason, when not nil, is the
// helper's policy on valid names. One bad entry never costs the others.
func checkEntries(in []Entry, reason func(string) string, budget int, overBudget string) *checked {
	c := &checked{}
	full := false
	for _, e := range in {
		addr, err := CheckAddr(e.Addr)
		if err != nil {
			for _, n := range e.Names {
				c.skip(n, err.Error())
			}
			continue
		}
		var keep []string
		size := len(addr.String()) + 1 // the address and the line break
		for i, n := range e.Names {
			if i >= MaxNamesPerLine {
				c.skip(n, fmt.Sprintf("more than %d names for one address", MaxNamesPerLine))
				continue
			}
			if err := names.CheckHostname(n); err != nil {
				c.skip(n, err.Error())
				continue
			}
			if reason != nil {
				if why := reason(n); why != "" {
					c.skip(n, why)
					continue
				}
			}
			keep = append(keep, n)
			size += 1 + len(n)
		}
		if len(keep) == 0 {
			continue
		}
		if full || c.bytes+size > budget {
			full = true
			for _, n := range keep {
				c.skip(n, overBudget)
			}
			continue
		}
		c.bytes += size
		c.entries = append(c.entries, hosts.Entry{Addr: addr, Names: keep})
	}
	return c
}
