package main

import (
	"bytes"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchCommits reports writes to the outbox's write-ahead log, where every
// commit lands, through inotify on the data home: an idle daemon then wakes
// the moment a hook enqueues instead of finding out at its next poll. The
// channel has room for one notice, and notices that find it full are
// dropped: one pending wake-up covers any number of commits. stop ends the
// watch.
func watchCommits(h home) (changes <-chan struct{}, stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("inotify: %w", err)
	}
	// IN_MODIFY on the home covers writes to the files in it; creating or
	// moving in covers a WAL that a new outbox file starts afresh.
	const mask = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO
	if _, err := unix.InotifyAddWatch(fd, h.dir, mask); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("inotify watch %s: %w", h.dir, err)
	}
	// A non-blocking inotify descriptor wrapped in an os.File is served by
	// the runtime's poller, so Close wakes the reader below and ends it.
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	wal := []byte(dbFileName + "-wal")
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return // Closed by stop, or broken: polling still covers us.
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				off += unix.SizeofInotifyEvent + int(ev.Len)
				if bytes.Equal(bytes.TrimRight(name, "\x00"), wal) {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return ch, func() {
		f.Close()
		<-done
	}, nil
}
