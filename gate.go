package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// The outbox's gate, outbox.gate in the data home, keeps a salvage
// (healOutbox) from moving the outbox aside under a connection that has it
// open. SQLite opens a database's -wal and -shm files, and deletes its WAL,
// by the database's name, not through the file it has open: a connection
// that opened outbox.db before the salvage renamed it would go on to write
// its pages into the fresh outbox's WAL as frames of another database, or
// write them into the old file after the salvage had read it, and delete
// the fresh outbox's WAL when it closed. So every connection to the outbox
// holds the gate shared for as long as it is open (openConn), and a salvage
// holds it exclusively while it moves the outbox aside and makes the fresh
// one (replaceOutbox): the salvage waits for the connections to close, and
// a new connection for the fresh outbox to be there.
//
// The gate is a file of its own, never renamed or deleted, so that it stays
// the same file for every process whatever happens to the outbox; being
// another file, a lock held on it does not keep the outbox from being
// renamed on Windows either.

// errOutboxInUse is healOutbox's error when connections to the outbox stay
// open for longer than it waits: it moved nothing, and can try again later.
var errOutboxInUse = errors.New("the outbox stayed in use by another connection")

// healGateWait bounds how long a salvage waits for the connections to the
// outbox to close. Hooks hold one for milliseconds; a connection held
// longer (a long 'outbox list', say) makes the daemon try again later.
const healGateWait = 5 * time.Second

// healWaitMsg is what a salvage logs when it has to wait for connections
// to the outbox to close.
const healWaitMsg = "outbox in use; the salvage waits for its connections to close"

// newGate returns the gate of the outbox at dbPath: the file outbox.gate
// beside it, opened as newLock opens the daemon's lock, never through a
// symlink and without waiting on a named pipe; lockRegular refuses
// anything but a regular file.
func newGate(dbPath string) *flock.Flock {
	return flock.New(filepath.Join(filepath.Dir(dbPath), gateFileName),
		flock.SetFlag(os.O_CREATE|os.O_RDWR|oNoFollow|oNonBlock), flock.SetPermissions(0o600))
}

// holdGate takes the gate of the outbox at dbPath shared, for a connection
// about to open the outbox, waiting up to wait while a salvage holds it.
// The caller lets go of it (releaseGate) once the connection is closed.
func holdGate(dbPath string, wait time.Duration) (*flock.Flock, error) {
	g := newGate(dbPath)
	intent := filepath.Join(filepath.Dir(dbPath), salvageIntentName)
	ok, err := settleLoop(context.Background(), wait, func() (bool, error) {
		ok, err := lockRegular(g, g.TryRLock)
		if ok {
			// A salvage killed while it moved the outbox's files aside
			// left them half moved: none is opened until the daemon's
			// next start has finished the move (resumeSalvage).
			if _, serr := os.Lstat(intent); serr == nil {
				g.Unlock()
				return false, nil
			}
		}
		return ok, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox gate: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("outbox gate: a salvage of the outbox held it for over %s", wait)
	}
	return g, nil
}

// releaseGate lets go of a gate taken by holdGate or closeGate; nil, as a
// connection that holds none has, is let go of as well.
func releaseGate(g *flock.Flock) {
	if g != nil {
		g.Unlock()
	}
}

// closeGate takes the gate of h's outbox exclusively, for a salvage: it
// waits for every connection to the outbox to close, for up to wait or
// until ctx is done, and says in the log that it waits. It returns
// errOutboxInUse when the time ran out.
func closeGate(ctx context.Context, h home, wait time.Duration, log *slog.Logger) (*flock.Flock, error) {
	g := newGate(h.path(dbFileName))
	said := false
	ok, err := settleLoop(ctx, wait, func() (bool, error) {
		ok, err := lockRegular(g, g.TryLock)
		if !ok && err == nil && !said {
			log.Info(healWaitMsg, "gate", g.Path(), "wait", wait.String())
			said = true
		}
		return ok, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox gate: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w (waited %s)", errOutboxInUse, wait)
	}
	return g, nil
}
