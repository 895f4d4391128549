package namespaces

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Ref
		wantErr string
	}{
		{in: "demo", want: Ref{Namespace: "demo"}},
		{in: "  demo2 ", want: Ref{Namespace: "demo2"}},
		{in: "dev/payments", want: Ref{Context: "dev", Namespace: "payments"}},
		{in: "arn:aws:eks:eu-west-1:1:cluster/prod/api", want: Ref{Context: "arn:aws:eks:eu-west-1:1:cluster/prod", Namespace: "api"}},
		{in: "", wantErr: "no namespace"},
		{in: "dev/", wantErr: "no namespace"},
		{in: "/demo", wantErr: "context before '/' is empty"},
		{in: "Demo", wantErr: `namespace "Demo" is not a valid name`},
		{in: "a b", wantErr: "not a valid name"},
		{in: "-x", wantErr: "not a valid name"},
		{in: strings.Repeat("a", 64), wantErr: "not a valid name"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Errorf("Parse(%q.String()) = %+v, %v", tt.in, back, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	got, err := ParseFile("# namespaces Tilt deploys to\ndemo\n\n  dev/payments  # the other cluster\r\ndemo2\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{{Namespace: "demo"}, {Context: "dev", Namespace: "payments"}, {Namespace: "demo2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := ParseFile("demo\nnot valid\n"); err == nil || !strings.HasPrefix(err.Error(), "line 2: ") {
		t.Errorf("bad line: err = %v, want one naming line 2", err)
	}
	if refs, err := ParseFile(""); err != nil || len(refs) != 0 {
		t.Errorf("empty file: %v, %v", refs, err)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add("demo\ndev/payments\n# x\n")
	f.Add("a/b/c\n\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		refs, err := ParseFile(text)
		if err != nil {
			return
		}
		for _, r := range refs {
			if strings.ContainsAny(r.Namespace, "/ \n\r\t#") || r.Namespace == "" {
				t.Fatalf("accepted namespace %q", r.Namespace)
			}
			if back, err := Parse(r.String()); err != nil || back != r {
				t.Fatalf("round trip of %+v: %+v, %v", r, back, err)
			}
		}
	})
}

func TestPerContext(t *testing.T) {
	refs := []Ref{{Namespace: "demo"}, {Context: "b", Namespace: "only-b"}, {Namespace: "demo"}, {Context: "a", Namespace: "demo2"}}
	got, err := PerContext(refs, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"a": {"demo", "demo2"}, "b": {"demo", "only-b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, _ := PerContext(nil, []string{"a"}); !reflect.DeepEqual(got, map[string][]string{"a": {}}) {
		t.Errorf("no refs: %v", got)
	}
	_, err = PerContext([]Ref{{Context: "prod", Namespace: "x"}}, []string{"a", "b"})
	if err == nil || err.Error() != `context "prod" is not forwarded by this kubefwd (it forwards from: a, b)` {
		t.Errorf("unknown context: %v", err)
	}
}

// TestFollow edits a real file the ways editors and tools do and checks
// that every change arrives, and a broken file keeps the previous set.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "namespaces")
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan []Ref, 16)
	errs := make(chan error, 16)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, nil, func(r []Ref) { got <- r }, func(err error) { errs <- err })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	expect := func(what string, want []Ref) {
		t.Helper()
		select {
		case r := <-got:
			if !reflect.DeepEqual(r, want) {
				t.Fatalf("%s: got %+v, want %+v", what, r, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no update", what)
		}
	}
	expect("missing file", nil)

	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("demo\n")
	expect("created", []Ref{{Namespace: "demo"}})

	// Saved by rename, as editors do.
	tmp := filepath.Join(dir, ".namespaces.swp")
	if err := os.WriteFile(tmp, []byte("demo\ndemo2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expect("renamed over", []Ref{{Namespace: "demo"}, {Namespace: "demo2"}})

	write("demo\nNot Valid\n")
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "line 2") {
			t.Errorf("error = %v, want it to name line 2", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a broken file was not reported")
	}
	select {
	case r := <-got:
		t.Fatalf("a broken file was applied: %+v", r)
	default:
	}

	write("")
	expect("emptied", nil)
	write("demo2\n")
	expect("refilled", []Ref{{Namespace: "demo2"}})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	expect("deleted", nil)
}
