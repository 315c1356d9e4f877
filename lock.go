package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/gofrs/flock"
)

// newLock returns the single-instance lock of a home. The lock file is never
// deleted: deleting it would let a second daemon lock a new file of the same
// name while the first still holds the old one. It is opened without
// waiting, so that a named pipe in its place cannot hang the open; tryLock
// refuses one.
func newLock(h home) *flock.Flock {
	return flock.New(h.path(lockFileName), flock.SetFlag(os.O_CREATE|os.O_RDWR|oNoFollow|oNonBlock), flock.SetPermissions(0o600))
}

// tryLock takes l if it is free, as l.TryLock does, but refuses a lock file
// that is not a regular file: difflore never makes one, and a lock on it
// would prove nothing.
func tryLock(l *flock.Flock) (bool, error) {
	return lockRegular(l, l.TryLock)
}

// lockRegular takes l with try (its TryLock or TryRLock), and refuses a
// lock file that is not a regular file, letting go of it again.
func lockRegular(l *flock.Flock, try func() (bool, error)) (bool, error) {
	ok, err := try()
	if err != nil || !ok {
		return ok, err
	}
	fi, err := l.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(l.Path(), fi.Mode())
	}
	if err != nil {
		l.Unlock()
		return false, err
	}
	return true, nil
}

// lockHeld reports whether some process holds the home's lock. It takes the
// lock for an instant when it is free, so it must not be called by the holder.
func lockHeld(h home) (bool, error) {
	if _, err := os.Stat(h.path(lockFileName)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	l := newLock(h)
	ok, err := tryLock(l)
	if err != nil {
		return false, fmt.Errorf("probe lock: %w", err)
	}
	if ok {
		l.Unlock()
	}
	return !ok, nil
}

// lockFileID is the identity (fileID) of the lock file now in the home.
func lockFileID(h home) (string, error) {
	path := h.path(lockFileName)
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", notRegular(path, fi.Mode())
	}
	return fileID(path, fi)
}

// heldLockID is the identity (fileID) of the lock file that lock, which the
// caller holds, has open. It comes from the open file, not from its name,
// and the file is not opened again where an OS needs no second open:
// with fcntl locks (gofrs/flock's on some systems), closing any descriptor
// of the file would release the lock.
func heldLockID(lock *flock.Flock) (string, error) {
	fi, err := lock.Stat()
	if err != nil {
		return "", err
	}
	return fileID(lock.Path(), fi)
}

// settleTime bounds how long run and stop wait for a lock holder to show
// itself (settleLoop). The lock is held for an instant by commands that only look (status,
// stop's stale check), and a daemon publishes its PID file just after it
// takes the lock and removes it just before it lets go; in those windows the
// lock and the PID file disagree, and deciding at once would be wrong.
const settleTime = 3 * time.Second

// takeLock takes the single-instance lock, or returns the already-running
// error when a daemon holds it. A lock held without a daemon that can be
// verified is tried again for settle: it may be a command that only looks,
// or a daemon that has not yet written its PID file. pause is called with
// "lock-busy" each time that happens (config.pauseAt).
func takeLock(ctx context.Context, h home, lock *flock.Flock, settle time.Duration, pause func(string)) error {
	var running error
	settled, err := settleLoop(ctx, settle, func() (bool, error) {
		ok, err := tryLock(lock)
		if err != nil {
			return false, fmt.Errorf("lock %s: %w", lock.Path(), err)
		}
		if ok {
			return true, nil
		}
		if info, _, err := lockHolder(h, false); err == nil {
			running = fmt.Errorf("already running (pid %d)", info.PID)
			return true, nil
		}
		pause("lock-busy")
		return false, nil
	})
	switch {
	case err != nil:
		return err
	case !settled:
		return &exitError{code: 1, err: errors.New("already running (the lock is held, but its pid file names no running daemon)"),
			hint: "'difflore status' says more; 'difflore run --takeover' replaces the daemon that holds it"}
	case running != nil:
		return &exitError{code: 1, err: running,
			hint: "'difflore stop' stops it; 'difflore run --takeover' replaces it"}
	}
	return nil
}

// settleLoop calls try until it reports done or fails, for up to settle,
// waiting a little longer between tries each time (5 ms, doubling up to
// 100 ms); it reports whether try was done before the time ran out. The lock
// and the PID file disagree for a moment while a daemon starts or exits, or
// while a command that only looks holds the lock: takeLock and stopTarget
// look again through such a moment before they decide.
func settleLoop(ctx context.Context, settle time.Duration, try func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(settle)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		done, err := try()
		if done || err != nil {
			return done, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if !sleepCtx(ctx, wait) {
			return false, ctx.Err()
		}
	}
}
