package hosts

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Owner identifies the process that owns a block: its PID and its start
// time, so that a PID reused by another process after a crash or reboot is
// not mistaken for the owner.
type Owner struct {
	PID   int
	Start string // platform token for the process start time; "" if unknown
}

// Self is the current process.
func Self() Owner { return OwnerOf(os.Getpid()) }

// OwnerOf is the running process pid (the privileged helper records its
// clients this way).
func OwnerOf(pid int) Owner { return Owner{PID: pid, Start: processStart(pid)} }

// String is the owner as written into a begin marker.
func (o Owner) String() string {
	if o.Start == "" {
		return "pid=" + strconv.Itoa(o.PID)
	}
	return fmt.Sprintf("pid=%d start=%s", o.PID, o.Start)
}

// ParseOwner reads an owner back from a begin marker's text.
func ParseOwner(s string) (Owner, bool) {
	var o Owner
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				return Owner{}, false
			}
			o.PID = pid
		case "start":
			o.Start = v
		}
	}
	return o, o.PID > 0
}

// Alive reports whether the owner is still running: a process with its PID
// exists and, where start times are known, started when the owner did.
func (o Owner) Alive() bool {
	if !processExists(o.PID) {
		return false
	}
	if o.Start == "" {
		return true
	}
	now := processStart(o.PID)
	return now == "" || now == o.Start
}
