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
//
// fd is the pipe as the daemon first opened it, read and write, kept for
// its whole life: poke writes into it from any goroutine. When the pipe is
// removed or replaced under the daemon (wait notices), the pipe made again
// in its place is read through pipe, which only wait touches.
type wakeListener struct {
	fd      int    // read and write, the first pipe: pokes
	pipe    int    // read and write, the pipe now at path (fd until it is made again)
	path    string // the pipe's name in the data home
	dev     uint64 // the pipe at path, to notice its replacement
	ino     uint64
	watch   int   // a watch on the data home (watchHome), -1 when there is none
	renewed error // what wait last found and mended (renewal), nil once read
}

func listenWake(h home) (*wakeListener, error) {
	path := h.path(wakeFileName)
	fd, st, err := openWakePipe(path)
	if err != nil {
		return nil, err
	}
	w := &wakeListener{fd: fd, pipe: fd, path: path, dev: uint64(st.Dev), ino: uint64(st.Ino), watch: watchHome(h.dir)}
	return w, nil
}

// openWakePipe makes the wake pipe at path unless it is there, and opens it.
func openWakePipe(path string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return -1, st, fmt.Errorf("make wake pipe: %w", err)
	}
	// Read and write: with a writer of its own the pipe never reads as
	// ended when the last enqueue closes its end, and poke can wake the
	// reader. O_NONBLOCK keeps the open from ever waiting; O_NOFOLLOW
	// and the check below refuse anything planted under the name.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, fmt.Errorf("open wake pipe: %w", err)
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return -1, st, fmt.Errorf("wake pipe %q is %s", path, wakePipeProblemAt(path))
	}
	// Blocking polls and reads in a thread of their own: Go's poller does
	// not take FIFOs on macOS, and a thread blocked in poll costs no
	// wake-ups on any system.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return -1, st, fmt.Errorf("wake pipe: %w", err)
	}
	return fd, st, nil
}

// wakePipeProblem says what is wrong with the wake pipe of h, or "" when
// it is a named pipe, as a running daemon keeps it.
func wakePipeProblem(h home) string {
	return wakePipeProblemAt(h.path(wakeFileName))
}

func wakePipeProblemAt(path string) string {
	var st unix.Stat_t
	switch err := unix.Lstat(path, &st); {
	case errors.Is(err, unix.ENOENT):
		return "missing"
	case err != nil:
		return err.Error()
	case st.Mode&unix.S_IFMT != unix.S_IFIFO:
		return "not a named pipe; remove it and restart the daemon"
	}
	return ""
}

// gone reports whether the pipe at path is no longer the one the listener
// reads: removed, or replaced by something else.
func (w *wakeListener) gone() bool {
	var st unix.Stat_t
	return unix.Lstat(w.path, &st) != nil || uint64(st.Dev) != w.dev || uint64(st.Ino) != w.ino
}

// renew makes the wake pipe again where it was removed or replaced, and
// reads it from then on, so that enqueue's wake-ups reach the daemon
// again; it records what it did for renewal. What is planted under the
// name is refused (an error): the daemon polls then.
func (w *wakeListener) renew() error {
	fd, st, err := openWakePipe(w.path)
	if err != nil {
		return fmt.Errorf("the wake pipe was removed or replaced under the daemon: %w", err)
	}
	if w.pipe != w.fd {
		unix.Close(w.pipe)
	}
	w.pipe, w.dev, w.ino = fd, uint64(st.Dev), uint64(st.Ino)
	w.renewed = fmt.Errorf("wake pipe %q was removed or replaced under the daemon; made it again", w.path)
	return nil
}

// renewal returns, once, what wait found and mended since it was last
// asked: the daemon logs it.
func (w *wakeListener) renewal() error {
	err := w.renewed
	w.renewed = nil
	return err
}

func (w *wakeListener) wait(timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.pipe), Events: unix.POLLIN}, {Fd: int32(w.watch), Events: unix.POLLIN}}
		if w.watch < 0 {
			fds = fds[:2]
		}
		if w.pipe == w.fd {
			fds = append(fds[:1], fds[2:]...)
		}
		// Whole milliseconds, rounded up: poll's unit, and a timeout
		// rounded down would return early and poll again. Without a
		// watch, the pipe is looked at every pipeCheckEvery.
		left := time.Until(deadline)
		if w.watch < 0 {
			left = min(left, pipeCheckEvery)
		}
		ms := int(min((left+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
		n, err := unix.Poll(fds, max(ms, 0))
		switch {
		case errors.Is(err, unix.EINTR):
			continue // A signal for another part of the program.
		case err != nil:
			return false, fmt.Errorf("wait for wake-ups: %w", err)
		}
		for _, f := range fds {
			if f.Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
				return false, fmt.Errorf("wait for wake-ups: poll revents %#x", f.Revents)
			}
		}
		woke := false
		for _, f := range fds {
			if f.Revents&unix.POLLIN == 0 {
				continue
			}
			if int(f.Fd) == w.watch {
				drainWatch(w.watch)
				continue
			}
			// One read takes up to 512 pending wake-ups at once: a
			// burst of enqueues reads as one or two. Poll said there is
			// something, so the read does not block.
			var buf [512]byte
			n, err := unix.Read(int(f.Fd), buf[:])
			if err != nil && !errors.Is(err, unix.EINTR) || n == 0 && err == nil {
				return false, fmt.Errorf("read wake pipe: %d bytes, %v", n, err)
			}
			woke = true
		}
		if (n == 0 || w.watch >= 0 && fds[len(fds)-1].Revents != 0) && w.gone() {
			// Enqueue finds no pipe, or not this one: make it again, and
			// make a pass for what was queued meanwhile unannounced.
			return true, w.renew()
		}
		if woke || time.Now().After(deadline) {
			return woke, nil
		}
	}
}

func (w *wakeListener) poke() { unix.Write(w.fd, []byte{0}) }

func (w *wakeListener) release() {
	if w.pipe != w.fd {
		unix.Close(w.pipe)
	}
	if w.watch >= 0 {
		unix.Close(w.watch)
	}
	unix.Close(w.fd)
}

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
