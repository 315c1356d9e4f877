package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// pipeCheckEvery is how often an idle daemon looks whether its wake pipe
// is still there when it has no watch on the data home (watchHome failed).
const pipeCheckEvery = time.Minute

// watchHome watches the data home for names that come and go (inotify), so
// that an idle daemon notices at once when its wake pipe is removed or
// replaced; -1 when it cannot.
func watchHome(dir string) int {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return -1
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}

// drainWatch reads what the watch has to say; wait then looks at the pipe
// itself, whatever name came or went.
func drainWatch(fd int) {
	var buf [4096]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if n <= 0 || err != nil {
			return
		}
	}
}
