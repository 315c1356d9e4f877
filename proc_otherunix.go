//go:build unix && !linux && !darwin && !freebsd && !netbsd && !openbsd

package main

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a bare PID on systems with neither pidfd nor kqueue; the exit wait
// falls back to the lock (see waitExit).
type proc struct {
	pid int
}

func openProc(pid int) (*proc, error) {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", pid, errNotRunning)
	}
	return &proc{pid: pid}, nil
}

func (p *proc) signal(sig unix.Signal) error { return unix.Kill(p.pid, sig) }

func (p *proc) wait(time.Duration) (bool, error) { return false, errNoExitWatch }

func (p *proc) close() {}
