package main

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"
)

// vacuumStep is how many free pages the daemon gives back to the file
// system in one idle moment: bounded, so that an enqueue never waits long
// behind it.
const vacuumStep = 4096

// vacuumPace is how soon an idle daemon comes back to shrink the outbox by
// another vacuumStep while free pages are left.
const vacuumPace = 75 * time.Millisecond

// housekeep reopens the outbox when its file was deleted or replaced,
// moves one bounded round of spilled events into it, and keeps it within
// its limits (limitStep). One round per turn of the loop, a delivery between rounds: a
// backlog of spill files or of evictions neither holds events back nor
// keeps the daemon from stopping.
func (dm *daemon) housekeep(ctx context.Context) {
	dm.lastSpill = time.Now()
	if dm.ob.replaced() {
		if err := dm.reopenOutbox(); err != nil {
			dm.log.Error("outbox file replaced; reopen", "error", err)
		} else {
			dm.log.Warn("outbox file replaced; reopened it", "path", dm.ob.path)
		}
	}
	// What other connections commit from here on shows as a new
	// data_version when the daemon goes idle (markIdle).
	dm.seenOb = nil
	if v, err := dm.ob.pragmaInt("data_version"); err == nil {
		dm.seenOb, dm.seenVer = dm.ob, v
	}
	r, err := replaySpill(ctx, dm.h, dm.ob)
	if err != nil {
		dm.log.Error("replay spilled events", "error", err)
	}
	if err != nil && dm.healDue(err) {
		if herr := dm.heal(ctx, err); herr != nil {
			dm.log.Error("reopen the outbox", "error", herr)
		}
	}
	b := spillRound{moved: dm.backlog.moved + r.moved, dead: dm.backlog.dead + r.dead, more: r.more && err == nil,
		unreadable: dm.backlog.unreadable + r.unreadable, unreadableErr: cmp.Or(dm.backlog.unreadableErr, r.unreadableErr)}
	dm.backlog = b
	if !b.more && err == nil {
		dm.noteUnreadable(b.unreadable, b.unreadableErr)
	}
	if !b.more && (b.moved > 0 || b.unreadable > 0) {
		if b.moved > 0 {
			dm.log.Info("replayed spilled events", "events", b.moved, "dead_letters", b.dead)
		}
		dm.backlog = spillRound{}
	}
	dm.limitStep(true)
}

// noteUnreadable records, for status and the log, how many spill files
// the last whole pass of replay could not read (they wait for the next
// one), when that changes.
func (dm *daemon) noteUnreadable(n int, why error) {
	if n == dm.spillUnreadable {
		return
	}
	msg := ""
	if n > 0 {
		msg = why.Error()
		dm.log.Warn("spill files cannot be read now; they are kept and tried again", "files", n, "error", why, "folder", dm.h.path(spillDirName))
	} else {
		dm.log.Info("every spill file could be read again")
	}
	err := dm.ob.setMeta(map[string]string{metaSpillUnreadable: strconv.Itoa(n), metaSpillUnreadableErr: msg})
	if err != nil {
		dm.log.Warn("write status", "error", err)
		return
	}
	dm.spillUnreadable = n
}

// limitStep keeps the outbox within its limits: the one step in which the
// daemon evicts (limits.go). It runs every limit with the housekeeping,
// once a second, also while batches go out (the outbox may grow meanwhile,
// behind a slow endpoint); and max_size alone, whose measure costs a few
// microseconds, at every idle turn, which each commit by a hook wakes, so
// that an outbox that is not being drained does not stay over max_size
// after a commit. Evicted pages go back to the file system in the idle
// moments after.
func (dm *daemon) limitStep(all bool) {
	evicted, more := dm.lim.enforce(dm.ob, all)
	dm.evictMore = more
	dm.vacuumDue = dm.vacuumDue || evicted
}

// reopenOutbox opens the outbox file now at the outbox's path in place of
// the one that was deleted or replaced, and hands it to the drainer. What
// the old file still held went with it.
func (dm *daemon) reopenOutbox() error {
	nob, err := openOutbox(dm.h, 5*time.Second, dm.ob.now)
	if err != nil {
		return err
	}
	endpoint := "(none)"
	if dm.d.sink != nil {
		endpoint = dm.d.sink.String()
	}
	if err := nob.setMeta(map[string]string{"endpoint": endpoint, "breaker": "closed"}); err != nil {
		nob.Close()
		return fmt.Errorf("write status: %w", err)
	}
	dm.stopRunners()
	dm.ob.Close()
	dm.ob, dm.d.ob = nob, nob
	if dm.runCtx != nil {
		dm.startRunners(dm.runCtx)
	}
	return nil
}

// backOff logs an outbox error and waits longer after each one in a row,
// up to 30 s; it reports false when ctx ended the wait.
func (dm *daemon) backOff(ctx context.Context, err error) bool {
	dm.dbErrors++
	dm.log.Error("outbox", "error", err)
	return sleepCtx(ctx, min(time.Duration(dm.dbErrors)*time.Second, 30*time.Second))
}

// vacuumStep gives free pages back a bounded step at a time (16 MiB with
// 4 KiB pages), and leaves vacuumDue set while some are left, so that the
// next idle moment goes on: one step after a burst left a drained
// million-event outbox at nearly its peak size.
func (dm *daemon) vacuumStep(ctx context.Context) {
	freed, left, err := dm.ob.vacuum(vacuumStep)
	switch {
	case err != nil && dm.healDue(err):
		// The vacuum walks the free pages, where damage that no claim or
		// acknowledgement reads shows first: salvage now, rather than
		// log the same error after every delivery until an ack fails.
		if herr := dm.heal(ctx, err); herr != nil {
			dm.log.Error("reopen the outbox", "error", herr)
		}
		return
	case err != nil:
		dm.log.Warn("vacuum", "error", err)
	}
	dm.vacuumDue = err == nil && left > 0
	if err == nil && freed > 0 && left == 0 {
		// Done with a shrink: hand the WAL's space back too, or it stays
		// at journal_size_limit as long as the daemon runs.
		if err := dm.ob.truncateWAL(); err != nil {
			dm.log.Warn("checkpoint", "error", err)
		}
	}
}
