//go:build linux

package collective

import (
	"syscall"
	"time"
)

// threadCPUTime returns the CPU time the calling OS thread has used (user +
// system), or false when it cannot be read. The caller must hold the thread
// with runtime.LockOSThread.
func threadCPUTime() (time.Duration, bool) {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
