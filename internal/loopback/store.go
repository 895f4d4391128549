package loopback

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// stateFile is the on-disk form of the assignments.
type stateFile struct {
	Version   int                   `json:"version"`
	Addresses map[string]Assignment `json:"addresses"`
}

// Store keeps assignments in a JSON file. Owner, if set, is applied to the
// file and its directory, so that running under sudo never leaves root-owned
// files in the user's home.
type Store struct {
	Path  string
	Owner *Owner
}

// Owner is a uid/gid to give files to.
type Owner struct{ UID, GID int }

// Load reads the assignments; a missing file is an empty state. A corrupt
// file is reported, not silently replaced.
func (s Store) Load() (map[string]Assignment, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Assignment{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read address state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("address state %s is corrupt (%v); move it away to start afresh", s.Path, err)
	}
	if f.Addresses == nil {
		f.Addresses = map[string]Assignment{}
	}
	return f.Addresses, nil
}

// Save writes the assignments atomically.
func (s Store) Save(state map[string]Assignment) error {
	dir := filepath.Dir(s.Path)
	if err := mkdirAllOwned(dir, s.Owner); err != nil {
		return fmt.Errorf("save address state: %w", err)
	}
	data, err := json.MarshalIndent(stateFile{Version: 1, Addresses: state}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".addresses-*.json")
	if err != nil {
		return fmt.Errorf("save address state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save address state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save address state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if s.Owner != nil {
		_ = os.Chown(tmp.Name(), s.Owner.UID, s.Owner.GID)
	}
	if err := os.Rename(tmp.Name(), s.Path); err != nil {
		return fmt.Errorf("save address state: %w", err)
	}
	return nil
}

// mkdirAllOwned is os.MkdirAll that gives every directory it creates to
// owner (~/.local and ~/.local/state included, not just the last one).
func mkdirAllOwned(dir string, owner *Owner) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if owner != nil {
			if err := os.Chown(missing[i], owner.UID, owner.GID); err != nil {
				return err
			}
		}
	}
	return nil
}
