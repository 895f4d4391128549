package hosts

import "os"

func processExists(pid int) bool {
	// On Windows FindProcess opens a handle, failing for a PID not in use.
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
