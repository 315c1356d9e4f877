package main

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a handle on a process. On Linux it is a pidfd, so that signals and
// the exit wait reach the process that was verified even if its PID is
// reused; kernels before 5.3 have no pidfd and fall back to the PID.
type proc struct {
	pid int
	fd  int // -1 without pidfd
}

func openProc(pid int) (*proc, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		return &proc{pid: pid, fd: fd}, nil
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("pid %d: %w", pid, errNotRunning)
	case errors.Is(err, unix.ENOSYS):
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("pid %d: %w", pid, errNotRunning)
		}
		return &proc{pid: pid, fd: -1}, nil
	}
	return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
}

func (p *proc) signal(sig unix.Signal) error {
	if p.fd >= 0 {
		return unix.PidfdSendSignal(p.fd, sig, nil, 0)
	}
	return unix.Kill(p.pid, sig)
}

// wait blocks until the process exits or timeout passes: a pidfd becomes
// readable when its process exits.
func (p *proc) wait(timeout time.Duration) (bool, error) {
	if p.fd < 0 {
		return false, errNoExitWatch
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		return n > 0, nil
	}
}

func (p *proc) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
}
