package main

import "errors"

// The process primitives differ by OS. Each OS file (proc_linux.go,
// proc_bsd.go, proc_otherunix.go, proc_unix.go, proc_windows.go) defines
// them under the same names, and what they promise is stated here, once:
//
//   - openProc(pid) opens a handle on a running process, so that what is
//     checked is what gets signalled even if the PID is reused; it fails with
//     errNotRunning when no such process runs.
//   - (*proc).requestStop asks the daemon to stop gracefully: SIGTERM on
//     Unix, the daemon's named stop event on Windows.
//   - (*proc).wait waits up to a timeout for the process to exit and reports
//     whether it did; errNoExitWatch means the OS gives no exit notification
//     (waitExit then waits for the lock instead).
//   - (*proc).kill ends the process at once; (*proc).close releases the
//     handle.
//   - stopContext returns a context cancelled when a stop request arrives.
//   - hangups returns a channel that delivers SIGHUP, nil where there is
//     none (Windows, or a daemon started with SIGHUP ignored), and a
//     function that stops the delivery.
//   - startDetachedProcess starts a command detached from the terminal or
//     console that started it, so that the daemon outlives it, and returns
//     the command it started; redirectStdio points this process's standard
//     output and error at a file, where the Go runtime writes a panic's
//     stack traces (dup2 onto descriptors 1 and 2 on Unix; SetStdHandle on
//     Windows, never by replacing os.Stdout and os.Stderr, which other
//     goroutines read without a lock). It may be called again for a new
//     file (the log rotated).
//   - currentStderr is where main prints the error the program ends with:
//     standard error as redirectStdio last set it (os.Stderr on Unix, where
//     descriptor 2 follows dup2; on Windows os.Stderr keeps the handle it
//     was made with, so the current standard error handle is written to).

var (
	errNotRunning  = errors.New("not running")
	errNoExitWatch = errors.New("no exit notification on this system")
)
