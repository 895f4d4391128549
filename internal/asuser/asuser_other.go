//go:build !linux && !darwin

package asuser

// become is not possible here: callers fail rather than act as root.
func (u *User) become() error { return ErrUnsupported }
