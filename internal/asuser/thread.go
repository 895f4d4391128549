package asuser

import "runtime"

func lockThread() { runtime.LockOSThread() }
