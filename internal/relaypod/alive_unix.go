//go:build unix

package relaypod

import (
	"errors"
	"syscall"
)

// processAlive reports whether pid runs on this machine (signal 0; a
// process of another user is alive too).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
