package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"slices"
	"testing"
	"time"
)

var testEntries = []entry{
	{Name: "kubefwd", Mode: 0o755, Data: []byte("\x7fELF program")},
	{Name: "man/kubefwd.1", Mode: 0o644, Data: []byte(".TH KUBEFWD 1\n")},
	{Name: "README.md", Mode: 0o644, Data: []byte("# kubefwd\n")},
	{Name: "completions/kubefwd.bash", Mode: 0o644, Data: []byte("complete\n")},
}

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// The same files in any order, on any day, make the same bytes.
func TestArchivesAreDeterministic(t *testing.T) {
	reversed := slices.Clone(testEntries)
	slices.Reverse(reversed)
	for _, c := range []struct {
		name  string
		write func(io.Writer, []entry, time.Time) error
	}{{"tar.gz", writeTarGz}, {"zip", writeZip}} {
		var a, b bytes.Buffer
		if err := c.write(&a, testEntries, testTime); err != nil {
			t.Fatal(err)
		}
		if err := c.write(&b, reversed, testTime.In(time.FixedZone("elsewhere", 5*3600))); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s: the same entries in another order (or time zone) gave other bytes", c.name)
		}
	}
}

func TestTarGzHeaders(t *testing.T) {
	var buf bytes.Buffer
	if err := writeTarGz(&buf, testEntries, testTime); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(testTime) {
			t.Errorf("%s: uid %d gid %d %q %q, time %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		wantMode := map[string]int64{"kubefwd": 0o755, "man/": 0o755, "completions/": 0o755}[h.Name]
		if wantMode == 0 {
			wantMode = 0o644
		}
		if h.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, wantMode)
		}
	}
	want := []string{"README.md", "completions/", "completions/kubefwd.bash", "kubefwd", "man/", "man/kubefwd.1"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
}

func TestZipHeaders(t *testing.T) {
	var buf bytes.Buffer
	if err := writeZip(&buf, testEntries, testTime); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if !f.Modified.Equal(testTime) {
			t.Errorf("%s: time %v", f.Name, f.Modified)
		}
		if f.Name == "kubefwd" && f.Mode().Perm() != 0o755 {
			t.Errorf("kubefwd: mode %v", f.Mode())
		}
	}
	if want := []string{"README.md", "completions/", "completions/kubefwd.bash", "kubefwd", "man/", "man/kubefwd.1"}; !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
}

func TestArchiveRefusesBadEntries(t *testing.T) {
	for _, bad := range [][]entry{
		{{Name: "/etc/passwd"}},
		{{Name: "../x"}},
		{{Name: "a/../b"}},
		{{Name: ""}},
		{{Name: "a"}, {Name: "a"}},
	} {
		if err := writeTarGz(io.Discard, bad, testTime); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
