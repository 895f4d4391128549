//go:build !unix

package relaypod

import "os"

// processAlive reports whether pid runs on this machine. Windows has no
// signal 0: opening the process is the test (it fails once the process is
// gone).
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
