//go:build !linux && !darwin

package peercred

import "errors"

// fromFD cannot know the peer here; servers then admit nobody but root.
func fromFD(int) (Cred, error) {
	return Cred{}, errors.New("peer credentials are not available on this platform")
}
