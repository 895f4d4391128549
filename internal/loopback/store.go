package loopback

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubefwd/kubefwd/internal/asuser"
	"github.com/kubefwd/kubefwd/internal/atomicfile"
)

// stateFile is the on-disk form of the assignments.
type stateFile struct {
	Version   int                   `json:"version"`
	Addresses map[string]Assignment `json:"addresses"`
}

// Store keeps assignments in a JSON file. Under sudo the file is the
// invoking user's, in their home: User, if set, is whose rights it is read
// and written with, so root never follows their links and every file and
// directory it creates is theirs.
type Store struct {
	Path string
	User *asuser.User
}

// Load reads the assignments; a missing file is an empty state. A corrupt
// file is reported, not silently replaced.
func (s Store) Load() (map[string]Assignment, error) {
	var data []byte
	err := s.User.Do(func() (err error) {
		data, err = os.ReadFile(s.Path)
		return err
	})
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
	data, err := json.MarshalIndent(stateFile{Version: 1, Addresses: state}, "", "  ")
	if err != nil {
		return err
	}
	err = s.User.Do(func() error {
		if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
			return err
		}
		return atomicfile.WriteFile(s.Path, append(data, '\n'), 0o600)
	})
	if err != nil {
		return fmt.Errorf("save address state: %w", err)
	}
	return nil
}
