// Package hosts keeps kubefwd's entries in a hosts file: one marked block per
// running instance, and not a byte changed outside it. Render is the pure
// core; File applies it to a path.
package hosts

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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
)

func (b Block) begin(added string) string {
	s := beginPrefix + b.ID
	if b.Owner != "" {
		s += " " + b.Owner
	}
	switch added {
	case "\n":
		s += addedLF
	case "\r\n":
		s += addedCRLF
	}
	return s
}

func (b Block) end() string { return endPrefix + b.ID }

// Render returns the hosts file content with block's entries replaced by
// entries (the block is removed when entries is empty). Names that the file
// already maps outside any kubefwd block are the user's: they are left out
// of the block and returned in skipped.
func Render(old []byte, block Block, entries []Entry) (out []byte, skipped []Skipped) {
	rest := Remove(old, block)
	// Line endings follow the rest of the file (which our block never
	// changes, so the choice is stable).
	eol := "\n"
	if bytes.Contains(rest, []byte("\r\n")) {
		eol = "\r\n"
	}
	user := userNames(rest)
	var lines []string
	for _, e := range entries {
		var keep []string
		for _, n := range e.Names {
			if !safeName(n) {
				continue // would corrupt the file; callers pass DNS names
			}
			if user[strings.ToLower(n)] {
				if !slices.ContainsFunc(skipped, func(s Skipped) bool { return s.Name == n }) {
					skipped = append(skipped, Skipped{Name: n, Reason: ReasonUserEntry})
				}
				continue
			}
			keep = append(keep, n)
		}
		if len(keep) > 0 && e.Addr.IsValid() {
			lines = append(lines, e.Addr.String()+" "+strings.Join(keep, " "))
		}
	}
	if len(lines) == 0 {
		return rest, skipped
	}
	var b bytes.Buffer
	b.Write(rest)
	added := ""
	if len(rest) > 0 && rest[len(rest)-1] != '\n' {
		added = eol
		b.WriteString(eol)
	}
	b.WriteString(block.begin(added) + eol)
	for _, l := range lines {
		b.WriteString(l + eol)
	}
	b.WriteString(block.end() + eol)
	return b.Bytes(), skipped
}

// Remove returns content without block's lines, byte for byte as it was
// before the block was added.
func Remove(content []byte, block Block) []byte {
	lines := splitLines(content)
	beginFor := beginPrefix + block.ID
	out := make([]byte, 0, len(content))
	for i := 0; i < len(lines); i++ {
		text := strings.TrimRight(string(lines[i]), "\r\n")
		if text != beginFor && !strings.HasPrefix(text, beginFor+" ") {
			out = append(out, lines[i]...)
			continue
		}
		j := i + 1
		for j < len(lines) {
			t := strings.TrimRight(string(lines[j]), "\r\n")
			if t == block.end() || t == beginFor || strings.HasPrefix(t, beginFor+" ") {
				break
			}
			j++
		}
		if j == len(lines) || strings.TrimRight(string(lines[j]), "\r\n") != block.end() {
			// No end marker: someone edited the block. Keep everything
			// rather than guess where it ends.
			out = append(out, lines[i]...)
			continue
		}
		switch {
		case strings.HasSuffix(text, addedCRLF):
			out = bytes.TrimSuffix(out, []byte("\r\n"))
		case strings.HasSuffix(text, addedLF):
			out = bytes.TrimSuffix(out, []byte("\n"))
		}
		i = j
	}
	return out
}

// Blocks lists the IDs and owners of all kubefwd blocks in content.
func Blocks(content []byte) map[string]string {
	out := map[string]string{}
	for _, l := range splitLines(content) {
		text := strings.TrimRight(string(l), "\r\n")
		if rest, ok := strings.CutPrefix(text, beginPrefix); ok {
			id, owner, _ := strings.Cut(rest, " ")
			owner = strings.TrimSuffix(strings.TrimSuffix(owner, addedLF), addedCRLF)
			out[id] = strings.TrimSpace(owner)
		}
	}
	return out
}

// safeName rejects what could break a hosts line: empty names, white space,
// comment signs and control characters.
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
