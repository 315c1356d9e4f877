package main

import (
	"io"
	"time"

	"golang.org/x/sys/windows"
)

// processCPU is the user + kernel CPU time this process has used, for
// benchmarks whose figure also depends on how loaded the machine is.
func processCPU() time.Duration {
	var creation, exit, kernel, user windows.Filetime
	if windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user) != nil {
		return 0
	}
	// A Filetime counts 100-nanosecond intervals.
	ticks := func(f windows.Filetime) int64 { return int64(f.HighDateTime)<<32 | int64(f.LowDateTime) }
	return time.Duration((ticks(kernel) + ticks(user)) * 100)
}

// stdoutNow writes to the standard output handle the process has now:
// redirectStdio sets the handles, not os.Stdout, on Windows.
func stdoutNow() io.Writer { return stdOutHandle{} }

type stdOutHandle struct{}

func (stdOutHandle) Write(p []byte) (int, error) {
	h, err := windows.GetStdHandle(windows.STD_OUTPUT_HANDLE)
	if err != nil {
		return 0, err
	}
	var n uint32
	err = windows.WriteFile(h, p, &n, nil)
	return int(n), err
}
