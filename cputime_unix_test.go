//go:build unix

package main

import (
	"io"
	"os"
	"syscall"
	"time"
)

// processCPU is the user + system CPU time this process has used, for
// benchmarks whose figure also depends on how loaded the machine is.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stdoutNow is the standard output: redirectStdio moves descriptor 1 itself
// on Unix.
func stdoutNow() io.Writer { return os.Stdout }
