package hosts

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var blk = Block{ID: "a1b2", Owner: "pid=42"}

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
			"127.0.0.1 localhost\n# kubefwd begin a1b2 pid=42\n127.1.27.1 web\n# kubefwd end a1b2\n"},
		{"no final newline", "127.0.0.1 localhost",
			"127.0.0.1 localhost\n# kubefwd begin a1b2 pid=42 +nl\n127.1.27.1 web\n# kubefwd end a1b2\n"},
		{"crlf", "127.0.0.1 localhost\r\n",
			"127.0.0.1 localhost\r\n# kubefwd begin a1b2 pid=42\r\n127.1.27.1 web\r\n# kubefwd end a1b2\r\n"},
		{"empty file", "",
			"# kubefwd begin a1b2 pid=42\n127.1.27.1 web\n# kubefwd end a1b2\n"},
		{"replaces own block, keeps another's", "x\n# kubefwd begin zz pid=1\n127.9.9.9 other\n# kubefwd end zz\n# kubefwd begin a1b2 pid=42\n127.1.27.9 old\n# kubefwd end a1b2\n\t# tail comment\n",
			"x\n# kubefwd begin zz pid=1\n127.9.9.9 other\n# kubefwd end zz\n\t# tail comment\n# kubefwd begin a1b2 pid=42\n127.1.27.1 web\n# kubefwd end a1b2\n"},
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
	want := old + "# kubefwd begin a1b2 pid=42\n127.1.27.1 api.demo\n127.1.27.2 web\n# kubefwd end a1b2\n"
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
	f.Fuzz(func(t *testing.T, old, name string) {
		es := []Entry{{Addr: netip.MustParseAddr("127.1.27.1"), Names: []string{"svc-" + filepath.Base(name)}}}
		base := Remove([]byte(old), blk)
		once, _ := Render([]byte(old), blk, es)
		twice, _ := Render(once, blk, es)
		if string(once) != string(twice) {
			t.Fatalf("not idempotent: %q → %q", once, twice)
		}
		if back := Remove(once, blk); string(back) != string(base) {
			t.Fatalf("round trip lost bytes: %q → %q → %q", old, once, back)
		}
	})
}
