// Package hosts keeps kubefwd's entries in a hosts file: one marked block per
// running instance, and not a byte changed outside it. Render is the pure
// core; File applies it to a path.
package hosts

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kubefwd/kubefwd/internal/names"
)

// Entry is one hosts line: an address and its names.
type Entry struct {
	Addr  netip.Addr
	Names []string
}

// Skipped is a name left out of the block, and why.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ReasonUserEntry is why a name the file's own lines map is left out.
const ReasonUserEntry = "the hosts file already maps it; your own entry wins"

// Block identifies an instance's block.
type Block struct {
	// ID is unique per running instance.
	ID string
	// Owner is written into the begin marker, for people and for stale
	// block cleanup (e.g. "pid=123 start=…").
	Owner string
}

const (
	beginPrefix = "# kubefwd begin "
	endPrefix   = "# kubefwd end "
	// addedLF and addedCRLF mark a block that had to add a line break
	// because the file did not end with one; removing the block removes
	// exactly that break too.
	addedLF   = " +nl"
	addedCRLF = " +crlf"
	// tallyKey starts the begin marker's tally of the block's lines.
	tallyKey = "lines="
)

// tally counts a block's entry lines and sums them (FNV-1a of the lines
// joined by "\n", line endings left out). Written into the begin marker, it
// lets a block whose end marker was deleted be told apart, line by line,
// from what follows it.
type tally struct {
	n   int
	sum uint32
}

func tallyOf(lines []string) tally {
	h := fnv.New32a()
	h.Write([]byte(strings.Join(lines, "\n")))
	return tally{n: len(lines), sum: h.Sum32()}
}

func (t tally) String() string { return fmt.Sprintf("%s%d:%08x", tallyKey, t.n, t.sum) }

func parseTally(s string) (tally, bool) {
	v, ok := strings.CutPrefix(s, tallyKey)
	if !ok {
		return tally{}, false
	}
	n, sum, ok := strings.Cut(v, ":")
	count, err1 := strconv.Atoi(n)
	h, err2 := strconv.ParseUint(sum, 16, 32)
	if !ok || err1 != nil || err2 != nil || count < 0 || len(sum) != 8 {
		return tally{}, false
	}
	return tally{n: count, sum: uint32(h)}, true
}

func (b Block) begin(added string, t tally) string {
	s := beginPrefix + b.ID
	if b.Owner != "" {
		s += " " + b.Owner
	}
	s += " " + t.String()
	switch added {
	case "\n":
		s += addedLF
	case "\r\n":
		s += addedCRLF
	}
	return s
}

func (b Block) end() string { return endPrefix + b.ID }

// marker is a parsed begin marker.
type marker struct {
	id, owner string
	tally     tally
	hasTally  bool   // blocks written before the tally have none
	added     string // the line break the block added, if any
}

// parseBegin reads a begin marker (a line without its ending).
func parseBegin(text string) (marker, bool) {
	rest, ok := strings.CutPrefix(text, beginPrefix)
	if !ok {
		return marker{}, false
	}
	var m marker
	switch {
	case strings.HasSuffix(rest, addedCRLF):
		m.added, rest = "\r\n", strings.TrimSuffix(rest, addedCRLF)
	case strings.HasSuffix(rest, addedLF):
		m.added, rest = "\n", strings.TrimSuffix(rest, addedLF)
	}
	m.id, rest, _ = strings.Cut(rest, " ")
	i := strings.LastIndexByte(rest, ' ') // -1: the tally is all there is
	if t, ok := parseTally(rest[i+1:]); ok {
		m.tally, m.hasTally, rest = t, true, rest[:max(i, 0)]
	}
	m.owner = strings.TrimSpace(rest)
	return m, true
}

func isMarker(text string) bool {
	return strings.HasPrefix(text, beginPrefix) || strings.HasPrefix(text, endPrefix)
}

// entryLine reports whether text (a line without its ending) has exactly
// the form of a line kubefwd writes: an IPv4 address in 127.0.0.0/8 and
// names, separated by single spaces, nothing else. Anything else inside a
// block (comments, other addresses, other spacing) was written by someone
// else and is kept.
func entryLine(text string) bool {
	addr, names, ok := strings.Cut(text, " ")
	if !ok || !loopback4(addr) {
		return false
	}
	for _, n := range strings.Split(names, " ") {
		if !safeName(n) {
			return false
		}
	}
	return true
}

// loopback4 accepts an IPv4 address in 127.0.0.0/8 in its canonical form.
func loopback4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4() && a.As4()[0] == 127 && a.String() == s
}

// ReasonNotLoopback is why the names of an entry whose address is not in
// 127.0.0.0/8 are left out.
const ReasonNotLoopback = "its address is not an IPv4 loopback address (127.0.0.0/8)"

// Render returns the hosts file content with block's entries replaced by
// entries (the block is removed when entries is empty). Names that the file
// already maps outside any kubefwd block are the user's: they are left out
// of the block and returned in skipped, as are names that are not valid DNS
// names and entries whose address is not in 127.0.0.0/8. Lines someone
// else added inside the block are kept, moved out of it (see Remove).
func Render(old []byte, block Block, entries []Entry) (out []byte, skipped []Skipped) {
	out, skipped, _ = render(old, block, entries)
	return out, skipped
}

// render is Render that also returns the lines kept from inside the old
// block because kubefwd did not write them.
func render(old []byte, block Block, entries []Entry) (out []byte, skipped []Skipped, user []string) {
	rest, user := strip(old, block.ID)
	// Line endings follow the rest of the file (which our block never
	// changes, so the choice is stable).
	eol := "\n"
	if bytes.Contains(rest, []byte("\r\n")) {
		eol = "\r\n"
	}
	mapped := userNames(rest)
	skip := func(name, reason string) {
		if !slices.ContainsFunc(skipped, func(s Skipped) bool { return s.Name == name }) {
			skipped = append(skipped, Skipped{Name: name, Reason: reason})
		}
	}
	var lines []string
	for _, e := range entries {
		if !e.Addr.IsValid() || !loopback4(e.Addr.String()) {
			for _, n := range e.Names {
				skip(n, ReasonNotLoopback)
			}
			continue
		}
		var keep []string
		for _, n := range e.Names {
			if err := names.CheckHostname(n); err != nil {
				skip(n, err.Error())
				continue
			}
			if mapped[strings.ToLower(n)] {
				skip(n, ReasonUserEntry)
				continue
			}
			keep = append(keep, n)
		}
		if len(keep) > 0 {
			lines = append(lines, e.Addr.String()+" "+strings.Join(keep, " "))
		}
	}
	if len(lines) == 0 {
		return rest, skipped, user
	}
	var b bytes.Buffer
	b.Write(rest)
	added := ""
	if len(rest) > 0 && rest[len(rest)-1] != '\n' {
		added = eol
		b.WriteString(eol)
	}
	b.WriteString(block.begin(added, tallyOf(lines)) + eol)
	for _, l := range lines {
		b.WriteString(l + eol)
	}
	b.WriteString(block.end() + eol)
	return b.Bytes(), skipped, user
}

// Remove returns content without block's lines: every line kubefwd wrote
// there goes, every other byte stays. A block at the end of the file goes
// with the line break it added, so removing it restores the file byte for
// byte.
//
// Lines someone else added inside the block (anything that is not exactly
// an entry line, see entryLine) stay, where the block was.
//
// A block whose end marker is gone (the next kubefwd marker or the end of
// the file comes first) is recovered only when its begin marker's tally
// proves which lines are its own: the first n entry lines after the marker
// must sum to what it recorded. Then the marker and exactly those n lines
// go and every other line stays. Otherwise (a block written before the
// tally existed, or one edited beyond recognition) nothing is removed:
// leaving a stale line is better than deleting one of the user's.
func Remove(content []byte, block Block) []byte {
	out, _ := strip(content, block.ID)
	return out
}

// strip is Remove that also returns the lines kept from inside the block.
// It repeats until nothing changes: removing one block of id can extend
// the reach of an earlier one that lost its end marker (its lines end at
// the next marker), and Remove must give the same answer for its own
// output, or Render would not be idempotent. Each pass that changes
// anything removes a begin marker, so this ends.
func strip(content []byte, id string) (out []byte, user []string) {
	out = content
	for {
		next, kept := stripOnce(out, id)
		user = append(user, kept...)
		if len(next) == len(out) {
			return next, user
		}
		out = next
	}
}

func stripOnce(content []byte, id string) (out []byte, user []string) {
	lines := splitLines(content)
	out = make([]byte, 0, len(content))
	for i := 0; i < len(lines); i++ {
		m, ok := parseBegin(trimEOL(lines[i]))
		if !ok || m.id != id {
			out = append(out, lines[i]...)
			continue
		}
		j := i + 1
		for j < len(lines) && !isMarker(trimEOL(lines[j])) {
			j++
		}
		var ours []int // indexes of the block's own lines
		last := j      // the block's last line
		if j < len(lines) && trimEOL(lines[j]) == endPrefix+id {
			for k := i + 1; k < j; k++ {
				if entryLine(trimEOL(lines[k])) {
					ours = append(ours, k)
				}
			}
		} else {
			var texts []string
			for k := i + 1; k < j && len(ours) < m.tally.n; k++ {
				if t := trimEOL(lines[k]); entryLine(t) {
					ours, texts = append(ours, k), append(texts, t)
				}
			}
			if !m.hasTally || tallyOf(texts) != m.tally {
				out = append(out, lines[i]...)
				continue
			}
			last = i
			if len(ours) > 0 {
				last = ours[len(ours)-1]
			}
		}
		kept := false
		for k := i + 1; k <= last && k < len(lines); k++ {
			if len(ours) > 0 && ours[0] == k {
				ours = ours[1:] // ascending: the next own line
				continue
			}
			if k == j {
				continue // the end marker
			}
			out = append(out, lines[k]...)
			user = append(user, trimEOL(lines[k]))
			kept = true
		}
		if !kept && last >= len(lines)-1 && m.added != "" {
			// The block was the file's end and had added the final line
			// break: take that back too. Elsewhere the break now ends a
			// line that something follows, and stays.
			out = bytes.TrimSuffix(out, []byte(m.added))
		}
		i = last
	}
	return out, user
}

// Blocks lists the IDs and owners of all kubefwd blocks in content.
func Blocks(content []byte) map[string]string {
	out := map[string]string{}
	for _, l := range splitLines(content) {
		if m, ok := parseBegin(trimEOL(l)); ok {
			out[m.id] = m.owner
		}
	}
	return out
}

// safeName rejects what could break a hosts line: empty names, white space,
// comment signs and control characters. Render writes only names that pass
// names.CheckHostname, a stricter check; this one recognises lines any
// kubefwd version wrote.
func safeName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, r := range n {
		if r <= ' ' || r == '#' || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}

func trimEOL(l []byte) string { return strings.TrimRight(string(l), "\r\n") }

// userNames collects the names mapped outside kubefwd blocks.
func userNames(content []byte) map[string]bool {
	names := map[string]bool{}
	inBlock := false
	for _, l := range splitLines(content) {
		text := strings.TrimSpace(string(l))
		switch {
		case strings.HasPrefix(text, beginPrefix):
			inBlock = true
			continue
		case strings.HasPrefix(text, endPrefix):
			inBlock = false
			continue
		case inBlock:
			continue
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) < 2 {
			continue
		}
		if _, err := netip.ParseAddr(fields[0]); err != nil {
			continue
		}
		for _, n := range fields[1:] {
			names[strings.ToLower(n)] = true
		}
	}
	return names
}

// splitLines splits after each '\n', keeping line endings; a last line
// without one is kept as is.
func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, b)
			break
		}
		out = append(out, b[:i+1])
		b = b[i+1:]
	}
	return out
}

// String formats entries as they appear in a block, for logs and tests.
func (e Entry) String() string { return fmt.Sprintf("%s %s", e.Addr, strings.Join(e.Names, " ")) }
