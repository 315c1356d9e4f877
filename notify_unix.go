//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// wakeListener reads the wake pipe, a FIFO in the data home.
type wakeListener struct {
	fd int // read and write
}

func listenWake(h home) (*wakeListener, error) {
	path := h.path(wakeFileName)
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("make wake pipe: %w", err)
	}
	// Read and write: with a writer of its own the pipe never reads as
	// ended when the last enqueue closes its end, and poke can wake the
	// reader. O_NONBLOCK keeps the open from ever waiting; O_NOFOLLOW
	// and the check below refuse anything planted under the name.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open wake pipe: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, fmt.Errorf("wake pipe %q is not a named pipe; remove it and restart the daemon", path)
	}
	// Blocking polls and reads in a thread of their own: Go's poller does
	// not take FIFOs on macOS, and a thread blocked in poll costs no
	// wake-ups on any system.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("wake pipe: %w", err)
	}
	return &wakeListener{fd: fd}, nil
}

func (w *wakeListener) wait(timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		// Whole milliseconds, rounded up: poll's unit, and a timeout
		// rounded down would return early and poll again.
		left := time.Until(deadline)
		ms := int(min((left+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
		n, err := unix.Poll(fds, max(ms, 0))
		switch {
		case errors.Is(err, unix.EINTR):
			continue // A signal for another part of the program.
		case err != nil:
			return false, fmt.Errorf("wait for wake-ups: %w", err)
		case fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0:
			return false, fmt.Errorf("wait for wake-ups: poll revents %#x", fds[0].Revents)
		case n == 0:
			return false, nil
		}
		break
	}
	// One read takes up to 512 pending wake-ups at once: a burst of
	// enqueues reads as one or two. Poll said there is something, so the
	// read does not block.
	var buf [512]byte
	n, err := unix.Read(w.fd, buf[:])
	if err != nil && !errors.Is(err, unix.EINTR) || n == 0 && err == nil {
		return false, fmt.Errorf("read wake pipe: %d bytes, %v", n, err)
	}
	return true, nil
}

func (w *wakeListener) poke() { unix.Write(w.fd, []byte{0}) }

func (w *wakeListener) release() { unix.Close(w.fd) }

func wakeDaemon(h home) {
	// No daemon has made the pipe (ENOENT), or none has it open (ENXIO):
	// no one to wake, which is the answer, not an error.
	fd, err := unix.Open(h.path(wakeFileName), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return // Something planted under the name: never write into it.
	}
	// EAGAIN means the pipe is full of wake-ups the daemon has yet to
	// read: it is awake already.
	unix.Write(fd, []byte{1})
}
