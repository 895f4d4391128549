//go:build !darwin

package control

import "os"

// tempBase is the system temp dir. (Linux desktops have /run/user/UID, used
// first; tests move sockets for other users with TMPDIR.)
func tempBase() string { return os.TempDir() }
