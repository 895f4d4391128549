package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// An entry is one file of an archive.
type entry struct {
	Name string      // slash-separated, relative
	Mode fs.FileMode // permission bits: 0o755 for programs, 0o644 for the rest
	Data []byte
}

// normalize sorts the entries by name and adds their parent directories,
// so that the archive does not depend on the order files were found in.
// Two entries of one name are an error.
func normalize(entries []entry) ([]entry, error) {
	byName := map[string]entry{}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.Name == "" || path.IsAbs(e.Name) || path.Clean(e.Name) != e.Name || strings.HasPrefix(e.Name, "../") {
			return nil, fmt.Errorf("archive entry %q is not a clean relative path", e.Name)
		}
		if _, dup := byName[e.Name]; dup {
			return nil, fmt.Errorf("archive entry %q is there twice", e.Name)
		}
		byName[e.Name] = e
		for d := path.Dir(e.Name); d != "."; d = path.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	var out []entry
	for d := range dirs {
		out = append(out, entry{Name: d, Mode: fs.ModeDir | 0o755})
	}
	for _, e := range byName {
		out = append(out, entry{Name: e.Name, Mode: e.Mode.Perm(), Data: e.Data})
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// writeTarGz writes a gzipped tar of the entries, the same bytes for the
// same entries in any order: sorted, every time mtime, owned by uid and
// gid 0 with no user or group names, and a gzip header without a name or a
// time.
func writeTarGz(w io.Writer, entries []entry, mtime time.Time) error {
	entries, err := normalize(entries)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	// gzip.Writer's header is empty unless set: no name, time 0.
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.Name, Mode: int64(e.Mode.Perm()), ModTime: mtime.UTC().Truncate(time.Second),
			Typeflag: tar.TypeReg, Size: int64(len(e.Data)), Format: tar.FormatUSTAR,
		}
		if e.Mode.IsDir() {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", e.Name, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return fmt.Errorf("tar %s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// writeZip writes a zip of the entries, as deterministic as writeTarGz:
// sorted, every time mtime (UTC), deflated.
func writeZip(w io.Writer, entries []entry, mtime time.Time) error {
	entries, err := normalize(entries)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: mtime.UTC().Truncate(time.Second)}
		h.SetMode(e.Mode)
		if e.Mode.IsDir() {
			h.Method = zip.Store
		}
		f, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("zip %s: %w", e.Name, err)
		}
		if _, err := f.Write(e.Data); err != nil {
			return fmt.Errorf("zip %s: %w", e.Name, err)
		}
	}
	return zw.Close()
}
