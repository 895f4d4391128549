//go:build linux || darwin

package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// copyXattrs makes dst's extended attributes exactly src's: each of src's
// is set on dst, and any dst got on creation (a directory's default ACL, a
// default SELinux label) that src does not have is removed. Without
// CAP_SYS_ADMIN the kernel does not list trusted.* attributes, so a writer
// that is not root cannot see, and does not keep, those.
func copyXattrs(dst, src *os.File) error {
	want, err := listXattrs(src)
	if err != nil {
		return err
	}
	have, err := listXattrs(dst)
	if err != nil {
		return err
	}
	for _, name := range want {
		value, err := getXattr(src, name)
		if err != nil {
			return fmt.Errorf("read extended attribute %s: %w", name, err)
		}
		if err := unix.Fsetxattr(int(dst.Fd()), name, value, 0); err != nil {
			return fmt.Errorf("copy extended attribute %s: %w", name, err)
		}
	}
	for _, name := range have {
		if slices.Contains(want, name) {
			continue
		}
		if err := unix.Fremovexattr(int(dst.Fd()), name); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("remove extended attribute %s from the new file: %w", name, err)
		}
	}
	return nil
}

// listXattrs returns f's attribute names; none where the file system has
// no extended attributes.
func listXattrs(f *os.File) ([]string, error) {
	for {
		n, err := unix.Flistxattr(int(f.Fd()), nil)
		if errors.Is(err, unix.ENOTSUP) || n == 0 && err == nil {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list extended attributes: %w", err)
		}
		buf := make([]byte, n)
		n, err = unix.Flistxattr(int(f.Fd()), buf)
		if errors.Is(err, unix.ERANGE) {
			continue // an attribute was added meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list extended attributes: %w", err)
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
}

func getXattr(f *os.File, name string) ([]byte, error) {
	for {
		n, err := unix.Fgetxattr(int(f.Fd()), name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Fgetxattr(int(f.Fd()), name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
