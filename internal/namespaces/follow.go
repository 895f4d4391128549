package namespaces

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/filewatch"
)

// ReadFile reads a namespaces file. A missing file is an empty set: the
// file may be written later (by Tilt, a script, the user).
func ReadFile(path string) ([]Ref, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	refs, err := ParseFile(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return refs, nil
}

// Follow calls apply with the file's entries whenever they change, until
// ctx ends. It watches the directory rather than the file, so editors that
// save by renaming a new file over the old one, and files created or
// deleted later, are followed too. A file that cannot be parsed is reported
// to onError and the previous set kept: a typo must not stop forwarding
// everything. The first call to apply is for the content at start. The
// file and its directory are the user's: they are watched and read with
// u's rights (nil: the process's own), so root never reads, or learns the
// names in, a directory the user could not.
func Follow(ctx context.Context, path string, u *asuser.User, apply func([]Ref), onError func(error)) error {
	w, err := filewatch.Start(path, u.Do)
	if err != nil {
		return err
	}
	defer w.Close()

	var last []Ref
	first := true
	load := func() {
		var refs []Ref
		err := u.Do(func() (err error) { refs, err = ReadFile(path); return err })
		if err != nil {
			onError(err)
			return
		}
		if first || !slices.Equal(refs, last) {
			first = false
			last = refs
			apply(refs)
		}
	}
	load() // after the watch began: no write falls between the two
	return w.Run(ctx, load, onError)
}
