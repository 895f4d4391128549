package hosts

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var blk = Block{ID: "a1b2", Owner: "pid=42"}

// webTally is the begin marker's tally of a block holding "127.1.27.1 web".
var webTally = " " + tallyOf([]string{"127.1.27.1 web"}).String()

func entries(pairs ...string) []Entry {
	var out []Entry
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Entry{Addr: netip.MustParseAddr(pairs[i]), Names: []string{pairs[i+1]}})
	}
	return out
}

func TestRenderKeepsEverythingElse(t *testing.T) {
	for _, tc := range []struct {
		name, old, want string
	}{
		{"plain", "127.0.0.1 localhost\n",
			"127.0.0.1 localhost\n# kubefwd begin a1b2 pid=42" + webTally + "\n127.1.27.1 web\n# kubefwd end a1b2\n"},
		{"no final newline", "127.0.0.1 localhost",
			"127.0.0.1 localhost\n# kubefwd begin a1b2 pid=42" + webTally + " +nl\n127.1.27.1 web\n# kubefwd end a1b2\n"},
		{"crlf", "127.0.0.1 localhost\r\n",
			"127.0.0.1 localhost\r\n# kubefwd begin a1b2 pid=42" + webTally + "\r\n127.1.27.1 web\r\n# kubefwd end a1b2\r\n"},
		{"empty file", "",
			"# kubefwd begin a1b2 pid=42" + webTally + "\n127.1.27.1 web\n# kubefwd end a1b2\n"},
		{"replaces own block, keeps another's", "x\n# kubefwd begin zz pid=1\n127.9.9.9 other\n# kubefwd end zz\n# kubefwd begin a1b2 pid=42\n127.1.27.9 old\n# kubefwd end a1b2\n\t# tail comment\n",
			"x\n# kubefwd begin zz pid=1\n127.9.9.9 other\n# kubefwd end zz\n\t# tail comment\n# kubefwd begin a1b2 pid=42" + webTally + "\n127.1.27.1 web\n# kubefwd end a1b2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := Render([]byte(tc.old), blk, entries("127.1.27.1", "web"))
			if string(got) != tc.want {
				t.Fatalf("Render =\n%q\nwant\n%q", got, tc.want)
			}
			again, _ := Render(got, blk, entries("127.1.27.1", "web"))
			if string(again) != string(got) {
				t.Fatalf("Render is not idempotent:\n%q", again)
			}
			if back := Remove(got, blk); string(back) != string(Remove([]byte(tc.old), blk)) {
				t.Fatalf("Remove(Render(x)) =\n%q\nwant\n%q", back, Remove([]byte(tc.old), blk))
			}
		})
	}
}

func TestUserEntriesWin(t *testing.T) {
	old := "127.0.0.1 localhost\n10.0.0.5 api   # my own\n"
	got, skipped := Render([]byte(old), blk, []Entry{
		{Addr: netip.MustParseAddr("127.1.27.1"), Names: []string{"api", "api.demo"}},
		{Addr: netip.MustParseAddr("127.1.27.2"), Names: []string{"web"}},
	})
	want := old + "# kubefwd begin a1b2 pid=42 " + tallyOf([]string{"127.1.27.1 api.demo", "127.1.27.2 web"}).String() + "\n127.1.27.1 api.demo\n127.1.27.2 web\n# kubefwd end a1b2\n"
	if string(got) != want || !slices.Equal(skipped, []Skipped{{Name: "api", Reason: ReasonUserEntry}}) {
		t.Fatalf("got %q skipped %v", got, skipped)
	}
}

func TestEmptyEntriesRemoveBlock(t *testing.T) {
	old := "a\n# kubefwd begin a1b2 pid=42 +nl\n127.1.27.1 web\n# kubefwd end a1b2\n"
	got, _ := Render([]byte(old), blk, nil)
	if string(got) != "a" {
		t.Fatalf("got %q, want %q", got, "a")
	}
}

func TestFileApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path, Block: blk}
	if _, err := f.Apply(entries("127.1.27.1", "web")); err != nil {
		t.Fatal(err)
	}
	if got := Blocks(mustRead(t, path)); got["a1b2"] != "pid=42" {
		t.Fatalf("Blocks = %v", got)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := string(mustRead(t, path)); got != "127.0.0.1 localhost" {
		t.Fatalf("after Remove: %q", got)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// For any input, the bytes outside our block survive a render/remove round
// trip, and rendering twice changes nothing.
func FuzzRender(f *testing.F) {
	f.Add("127.0.0.1 localhost\n", "web")
	f.Add("a\r\nb", "x")
	f.Add("# kubefwd begin a1b2 pid=1\nno end", "y")
	f.Add("", "z")
	f.Add("no newline at the end", "w")
	f.Add("\n\n# comment\r\n\t10.0.0.1  corp\n\n", "v")
	f.Fuzz(func(t *testing.T, old, name string) {
		es := []Entry{{Addr: netip.MustParseAddr("127.1.27.1"), Names: []string{"svc-" + filepath.Base(name)}}}
		base := Remove([]byte(old), blk)
		once, _ := Render([]byte(old), blk, es)
		twice, _ := Render(once, blk, es)
		if string(once) != string(twice) {
			t.Fatalf("not idempotent: %q → %q", once, twice)
		}
		back := Remove(once, blk)
		if string(back) != string(base) {
			t.Fatalf("round trip lost bytes: %q → %q → %q", old, once, back)
		}
		// Without a block of ours, the user's bytes come back exactly (a
		// Remove that also dropped some of theirs passes the check above).
		if !strings.Contains(old, "kubefwd") && string(back) != old {
			t.Fatalf("the user's file changed: %q → %q → %q", old, once, back)
		}
	})
}

// rendered is the block Render writes for entries, and that block without
// its end marker (as a user who deleted that line leaves it).
func rendered(t *testing.T, id string, es []Entry) (block, broken string) {
	t.Helper()
	out, _ := Render(nil, Block{ID: id, Owner: "pid=42"}, es)
	block = string(out)
	broken = strings.Replace(block, "# kubefwd end "+id+"\n", "", 1)
	if broken == block {
		t.Fatalf("no end marker in %q", block)
	}
	return block, broken
}

func TestRemoveRecoversBlockWithoutEnd(t *testing.T) {
	es := entries("127.1.27.1", "web", "127.1.27.2", "api")
	_, broken := rendered(t, "a1b2", es)
	_, otherBroken := rendered(t, "zz", es)
	other, _ := rendered(t, "zz", entries("127.9.9.9", "other"))
	begin, _, _ := strings.Cut(broken, "\n")
	withNL, _ := Render([]byte("a"), blk, es)
	noEOL := strings.Replace(string(withNL), "# kubefwd end a1b2\n", "", 1)
	for _, tc := range []struct {
		name, in, want string
		user           []string
	}{
		{"followed by the user's lines, one in kubefwd's own form",
			"127.0.0.1 localhost\n" + broken + "127.0.0.5 mine\n# mine\n",
			"127.0.0.1 localhost\n127.0.0.5 mine\n# mine\n", nil},
		{"a comment added between its lines stays where it is",
			begin + "\n127.1.27.1 web\n# note\n127.1.27.2 api\n10.0.0.1 db\n",
			"# note\n10.0.0.1 db\n", []string{"# note"}},
		{"followed by another instance's block",
			broken + other,
			other, nil},
		{"at the end of a file without a final newline",
			noEOL, "a", nil},
		{"another instance's broken block is not ours",
			otherBroken + "x\n",
			otherBroken + "x\n", nil},
		{"a line in kubefwd's form inserted among its lines: cannot tell, nothing removed",
			begin + "\n127.1.27.1 web\n127.0.0.9 mine\n127.1.27.2 api\n",
			begin + "\n127.1.27.1 web\n127.0.0.9 mine\n127.1.27.2 api\n", nil},
		{"one of its lines edited: cannot tell, nothing removed",
			begin + "\n127.1.27.1 web\n127.1.27.2 api-edited\n",
			begin + "\n127.1.27.1 web\n127.1.27.2 api-edited\n", nil},
		{"a block from before the tally: nothing removed",
			"# kubefwd begin a1b2 pid=42\n127.1.27.1 web\n",
			"# kubefwd begin a1b2 pid=42\n127.1.27.1 web\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, user := strip([]byte(tc.in), "a1b2")
			if string(got) != tc.want {
				t.Errorf("Remove =\n%q\nwant\n%q", got, tc.want)
			}
			if !slices.Equal(user, tc.user) {
				t.Errorf("user lines %q, want %q", user, tc.user)
			}
		})
	}
}

func TestRemoveBlockWithAddedNewline(t *testing.T) {
	out, _ := Render([]byte("a"), blk, entries("127.1.27.1", "web"))
	if got := string(Remove(out, blk)); got != "a" {
		t.Errorf("at the end: %q, want %q", got, "a")
	}
	// Someone appended a line after the block: the break the block added
	// now ends "a", and "a" must not be joined to what follows.
	if got := string(Remove(append(out, "b\n"...), blk)); got != "a\nb\n" {
		t.Errorf("followed by a line: %q, want %q", got, "a\nb\n")
	}
}

// Lines someone added inside a block are kept, out of it, and reported;
// the block is written anew after them.
func TestRenderMovesUserLinesOut(t *testing.T) {
	block, _ := rendered(t, "a1b2", entries("127.1.27.1", "web"))
	begin, rest, _ := strings.Cut(block, "\n")
	old := "127.0.0.1 localhost\n" + begin + "\n# my note\n10.0.0.1 db\n127.1.27.8  two-spaces\n" + rest + "# after\n"
	out, _, user := render([]byte(old), blk, entries("127.1.27.1", "web"))
	want := "127.0.0.1 localhost\n# my note\n10.0.0.1 db\n127.1.27.8  two-spaces\n# after\n" + block
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if wantUser := []string{"# my note", "10.0.0.1 db", "127.1.27.8  two-spaces"}; !slices.Equal(user, wantUser) {
		t.Errorf("user lines %q, want %q", user, wantUser)
	}
	// The moved line maps db; it is the user's now.
	_, skipped := Render(out, blk, []Entry{{Addr: netip.MustParseAddr("127.1.27.3"), Names: []string{"db"}}})
	if len(skipped) != 1 || skipped[0].Reason != ReasonUserEntry {
		t.Errorf("skipped %v", skipped)
	}
}

// Render writes only what Remove recognises as its own: valid DNS names on
// 127/8 addresses. The rest is skipped with a reason; the other names stay.
func TestRenderSkipsWhatItCannotWrite(t *testing.T) {
	out, skipped := Render(nil, blk, []Entry{
		{Addr: netip.MustParseAddr("127.1.27.1"), Names: []string{"web", "localhost", "bad_name", "a..b", "x#y"}},
		{Addr: netip.MustParseAddr("10.0.0.1"), Names: []string{"remote"}},
		{Addr: netip.MustParseAddr("::1"), Names: []string{"six"}},
		{Addr: netip.MustParseAddr("::ffff:127.0.0.1"), Names: []string{"mapped"}},
		{Names: []string{"noaddr"}},
	})
	if !strings.Contains(string(out), "\n127.1.27.1 web\n") || strings.Count(string(out), "\n") != 3 {
		t.Errorf("got %q", out)
	}
	var got []string
	for _, s := range skipped {
		got = append(got, s.Name)
		if s.Reason == "" {
			t.Errorf("%s skipped without a reason", s.Name)
		}
	}
	if want := []string{"localhost", "bad_name", "a..b", "x#y", "remote", "six", "mapped", "noaddr"}; !slices.Equal(got, want) {
		t.Errorf("skipped %q, want %q", got, want)
	}
}

func TestBlocksOwner(t *testing.T) {
	block, broken := rendered(t, "a1b2", entries("127.1.27.1", "web"))
	for _, in := range []string{block, broken, "# kubefwd begin a1b2 pid=42 +nl\n", "# kubefwd begin a1b2 pid=42\n"} {
		if got := Blocks([]byte(in)); len(got) != 1 || got["a1b2"] != "pid=42" {
			t.Errorf("Blocks(%q) = %v", in, got)
		}
	}
	if got := Blocks([]byte("# kubefwd begin solo lines=1:00000000\n")); got["solo"] != "" {
		t.Errorf("owner of a marker with only a tally: %q", got["solo"])
	}
}

// Whatever the content, Remove takes away only kubefwd's lines: the markers
// of the block and lines in the exact form kubefwd writes. Every other line
// is kept, in order, byte for byte (the last one may lose the line break
// the block added).
func FuzzRemoveKeepsForeignLines(f *testing.F) {
	block, broken := rendered(&testing.T{}, "a1b2", entries("127.1.27.1", "web", "127.1.27.2", "api"))
	f.Add("127.0.0.1 localhost\n" + block + "# after\n")
	f.Add(broken + "127.0.0.5 mine\n")
	f.Add(broken + broken + "x\n" + block)
	f.Add("a" + strings.Replace(block, "lines=", "x lines=", 1))
	f.Add("# kubefwd begin a1b2 pid=1 lines=1:00000000 +nl\n127.1.1.1 a\n")
	f.Add("# kubefwd begin a1b2 lines=0:811c9dc5\r\nfoo\r\n# kubefwd end a1b2")
	f.Fuzz(func(t *testing.T, in string) {
		out, _ := strip([]byte(in), "a1b2")
		outLines := splitLines(out)
		k := 0
		for _, l := range splitLines([]byte(in)) {
			if k < len(outLines) && (string(outLines[k]) == string(l) ||
				k == len(outLines)-1 && strings.HasPrefix(string(l), string(outLines[k])) && trimEOL(l) == trimEOL(outLines[k])) {
				k++
				continue
			}
			text := trimEOL(l)
			m, isBegin := parseBegin(text)
			ours := isBegin && m.id == "a1b2" || text == "# kubefwd end a1b2" || entryLine(text)
			if !ours {
				t.Fatalf("removed a line that is not kubefwd's: %q\nfrom %q\ngot  %q", text, in, out)
			}
		}
		if k != len(outLines) {
			t.Fatalf("output is not the input less some lines:\n%q\n%q", in, out)
		}
	})
}

// A block whose end marker was deleted, between any lines of the user's,
// is removed exactly.
func FuzzRecoverBlock(f *testing.F) {
	f.Add("127.0.0.1 localhost\n", "127.0.0.5 mine\n", "web")
	f.Add("", "# x", "a.b")
	f.Add("a\r\n", "127.1.27.1 web\n", "web")
	f.Fuzz(func(t *testing.T, pre, post, name string) {
		pre, post = userText(pre), userText(post)
		if pre != "" && !strings.HasSuffix(pre, "\n") {
			pre += "\n"
		}
		es := []Entry{{Addr: netip.MustParseAddr("127.1.27.1"), Names: []string{name, "web"}}}
		block, _ := Render(nil, blk, es)
		broken := strings.Replace(string(block), "# kubefwd end a1b2\n", "", 1)
		if got := string(Remove([]byte(pre+broken+post), blk)); got != pre+post {
			t.Fatalf("Remove(%q) = %q, want %q", pre+broken+post, got, pre+post)
		}
	})
}

// userText drops the lines that hold a kubefwd marker.
func userText(s string) string {
	var b strings.Builder
	for _, l := range splitLines([]byte(s)) {
		if !strings.Contains(string(l), "kubefwd") {
			b.Write(l)
		}
	}
	return b.String()
}

// The helper allows sessions of thousands of lines; rendering over such a
// block stays linear.
func BenchmarkRenderLargeBlock(b *testing.B) {
	var es []Entry
	for i := range 10000 {
		es = append(es, Entry{Addr: netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), Names: []string{"svc" + strconv.Itoa(i)}})
	}
	old, _ := Render([]byte("127.0.0.1 localhost\n"), blk, es)
	b.ResetTimer()
	for b.Loop() {
		Render(old, blk, es)
	}
}
