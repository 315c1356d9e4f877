package main

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lockedByProcess reports whether a POSIX record lock (fcntl) is held on
// any byte of the file at path. An open file description lock conflicts
// with a process's record locks, even this process's, so F_OFD_GETLK
// sees the locks SQLite holds in this process, which F_GETLK would not.
func lockedByProcess(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Closing this descriptor drops this process's record locks on the
	// file, as any close does: a test probes once, at its end.
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		t.Fatal(err)
	}
	return lk.Type != unix.F_UNLCK
}

// TestOpenKeepsLocksOfLiveConnection opens the outbox a second time in a
// process that already has it open, as the daemon does when it reopens or
// salvages it, or a test runs a command beside an in-process daemon. The
// open must not open and close a descriptor of outbox.db of its own: on
// Unix, closing any descriptor of a file drops every record lock the
// process holds on it, SQLite's included, and another process would then
// believe that no connection had the outbox open (and checkpoint and
// delete the WAL under it).
func TestOpenKeepsLocksOfLiveConnection(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	live := mustOutbox(t, h, time.Now)
	defer live.Close()
	if _, err := live.counts(); err != nil {
		t.Fatal(err)
	}
	second := mustOutbox(t, h, time.Now)
	defer second.Close()
	if _, err := second.counts(); err != nil {
		t.Fatal(err)
	}
	if !lockedByProcess(t, h.path(dbFileName)) {
		t.Fatal("no lock on outbox.db while two connections have it open: opening the second dropped the first one's")
	}
}
