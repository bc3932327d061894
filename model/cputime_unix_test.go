//go:build unix

package model

import (
	"syscall"
	"time"
)

// cpuTime returns the user+system CPU time of the process so far, which does
// not advance while other processes hold the cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
