package hosts

import (
	"os"
	"strconv"
	"strings"
)

// processStart is the process's start time in clock ticks after boot
// (/proc/PID/stat field 22); "" if unknown.
func processStart(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; fields after it don't.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return ""
	}
	if fields[0] == "Z" {
		return "" // a zombie has exited; processExists says so
	}
	return fields[19]
}
