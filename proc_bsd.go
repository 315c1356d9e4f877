//go:build darwin || freebsd || netbsd || openbsd

package main

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a process watched through kqueue: EVFILT_PROC with NOTE_EXIT,
// registered before the process is verified, fires when that process exits.
type proc struct {
	pid int
	kq  int
}

func openProc(pid int) (*proc, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, fmt.Errorf("kqueue: %w", err)
	}
	ev := unix.Kevent_t{}
	unix.SetKevent(&ev, pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev.Fflags = unix.NOTE_EXIT
	if _, err := unix.Kevent(kq, []unix.Kevent_t{ev}, nil, nil); err != nil {
		unix.Close(kq)
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("pid %d: %w", pid, errNotRunning)
		}
		return nil, fmt.Errorf("kevent %d: %w", pid, err)
	}
	return &proc{pid: pid, kq: kq}, nil
}

func (p *proc) signal(sig unix.Signal) error { return unix.Kill(p.pid, sig) }

// wait blocks until the process exits or timeout passes.
func (p *proc) wait(timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	events := make([]unix.Kevent_t, 1)
	for {
		ts := unix.NsecToTimespec(max(0, time.Until(deadline).Nanoseconds()))
		n, err := unix.Kevent(p.kq, nil, events, &ts)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("kevent: %w", err)
		}
		return n > 0, nil
	}
}

func (p *proc) close() { unix.Close(p.kq) }
