package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// unwatchedPoll is the most an idle daemon sleeps when it cannot listen
// for wake-ups (listenWake failed): it then finds new events by polling.
const unwatchedPoll = time.Second

// quietLook is the debug line of a safety-net look that found nothing new.
const quietLook = "safety net: nothing new"

// idleLine is the debug line of a daemon that goes to sleep until news or
// a time: what a test waits for to know that the daemon is idle.
const idleLine = "idle: waiting for wake-ups"

// nextWake is when delivery can go on without news: the next event's
// available_at, or the end of a pause or open breaker, whichever is later.
// timed is false when nothing waits for a time, or there is no endpoint;
// pending is false when no event is pending at all (or true when that is
// not known).
func (dm *daemon) nextWake() (at time.Time, timed, pending bool) {
	at, pending, err := dm.ob.nextAvailable()
	if err != nil {
		dm.log.Error("outbox", "error", err)
		pending = true
	}
	if !pending || err != nil || dm.d.sink == nil {
		return time.Time{}, false, pending
	}
	if hold := dm.d.holdUntil(); hold.After(at) {
		at = hold
	}
	return at, true, true
}

// waitIdle sleeps until the next thing to do: news (a wake-up from enqueue
// for a new event in the outbox or a spill file), delivery going on
// (nextWake), a vacuum step, or the daemon's stop or SIGHUP. News makes
// housekeeping due, so the next turn looks at the spill folder and at an
// outbox file replaced under the daemon too. The daemon's own commits send
// no wake-up. When --tick has passed since the last look, the safety net
// looks for what no wake-up announced, and sleeps again unless it finds
// something (nothingNew): a commit made by another connection during the
// turn (markIdle) is something.
func (dm *daemon) waitIdle(ctx context.Context) {
	at, timed, pending := dm.nextWake()
	mark, news := dm.markIdle()
	if news {
		dm.lastSpill = time.Time{}
		return
	}
	mark.pending = pending
	for {
		next := dm.lastSpill.Add(dm.tick) // the safety net
		if timed && at.Before(next) {
			next = at
		}
		// An event passing max_age is no news either: its time is known.
		if due, ok := dm.lim.ageDue(); ok && due.After(time.Now()) && due.Before(next) {
			next = due
		}
		timeout := time.Until(next)
		if dm.vacuumDue {
			timeout = min(timeout, vacuumPace)
		}
		dm.log.Debug(idleLine, "for", timeout.Round(time.Millisecond))
		woke, look := dm.sleep(ctx, timeout)
		if woke {
			dm.lastSpill = time.Time{}
			return
		}
		if ctx.Err() != nil || !look && time.Since(dm.lastSpill) < dm.tick {
			return // Delivery goes on, or a vacuum step is due.
		}
		if !dm.nothingNew(mark) {
			dm.lastSpill = time.Time{}
			return
		}
		dm.log.Debug(quietLook)
		dm.lastSpill = time.Now()
	}
}

// sleep waits at most timeout in the wake listener, or, when the daemon
// cannot listen, until its poll: look is true then. woke is true for a
// wake-up from enqueue or a poke (the stop, SIGHUP), which the loop
// handles.
func (dm *daemon) sleep(ctx context.Context, timeout time.Duration) (woke, look bool) {
	if dm.wake != nil {
		woke, err := dm.wake.wait(timeout)
		if r := dm.wake.renewal(); r != nil {
			dm.log.Warn(r.Error())
		}
		if err == nil {
			return woke, false
		}
		// The loop releases it at its end: pokes may still come.
		dm.wake = nil
		dm.pollInstead(err)
		return true, false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-dm.hup:
		dm.reload()
	case <-dm.pollT.C:
		return false, true
	}
	return false, false
}

// nothingNew is the safety net's look when no wake-up came: it reports
// whether all a drain pass would look at is as the daemon left it when it
// went idle (markIdle). The outbox file is the same and nobody has
// committed to it since (its WAL-index header), no spill file waits, and
// no limit is due by the clock or the free disk space
// (limiter.dueWithoutNews). That is three or four small system calls and
// no SQLite code: on a process gone cold after minutes asleep, a drain pass
// or a query that SQLite parses runs far longer, and the Go runtime's
// monitor thread keeps waking for as long as it runs (BENCHMARKS.md).
func (dm *daemon) nothingNew(m idleMark) bool {
	what := dm.newSinceIdle(m)
	if what != "" {
		dm.log.Debug("safety net: news", "what", what)
	}
	return what == ""
}

// newSinceIdle is nothingNew's look: what changed since the mark, or "".
func (dm *daemon) newSinceIdle(m idleMark) string {
	if dm.ob.replaced() {
		return "outbox file replaced"
	}
	if m.committed {
		return "outbox committed to during the last pass (data_version)"
	}
	if m.ok {
		if h, err := dm.ob.readWALIndexHeader(); err != nil || h != m.hdr {
			return fmt.Sprintf("outbox committed to (WAL-index header; %v)", err)
		}
	} else if v, err := dm.ob.pragmaInt("data_version"); err != nil || v != dm.seenVer {
		return fmt.Sprintf("outbox committed to (data_version; %v)", err)
	}
	if n, err := countSpilled(dm.h); err != nil || n > 0 {
		return fmt.Sprintf("spill folder: %d files (%v)", n, err)
	}
	if dm.lim.dueWithoutNews(m.pending) {
		return "a limit is due"
	}
	return ""
}

// idleMark is what the safety net compares with while the daemon is idle:
// the outbox's WAL-index header when it went idle, if it could be read
// (else SQLite's data_version stands in).
type idleMark struct {
	hdr       walIndexHeader
	ok        bool
	pending   bool // some event was pending: the free disk space counts
	committed bool // another connection committed during the turn
}

// markIdle takes the mark as the daemon goes idle: the WAL-index header
// first, then SQLite's data_version. news is true when housekeeping has not
// looked at this outbox (it was reopened): a pass must look now. When
// data_version is no longer what housekeeping saw (its commits are the
// daemon's own, which data_version does not count), another connection
// committed during the turn, which the header taken now no longer shows:
// the safety net's next look finds it (committed), as it finds a commit
// made while the daemon sleeps. Most such commits are the daemon's own
// too, its other sinks' drainers' on their own connections (sinkrunner.go):
// a pass for them at once cost every event to those sinks another pass,
// housekeeping included, on the CPU they were delivering it with
// (BenchmarkSinksLatency). An enqueue's commit comes with its wake-up,
// which the sleep finds at once. When data_version cannot be read at
// all, there is no news: a pass would read it no better, and the safety
// net's looks go on.
func (dm *daemon) markIdle() (m idleMark, news bool) {
	var err error
	m.hdr, err = dm.ob.readWALIndexHeader()
	m.ok = err == nil
	v, err := dm.ob.pragmaInt("data_version")
	if err != nil {
		return m, false
	}
	m.committed = dm.seenOb == dm.ob && v != dm.seenVer
	return m, dm.seenOb != dm.ob
}

// pollInstead makes the daemon look every second at most, when it cannot
// listen for wake-ups (err says why).
func (dm *daemon) pollInstead(err error) {
	poll := min(dm.tick, unwatchedPoll)
	dm.log.Warn("no wake-ups from enqueue; polling", "every", poll, "error", err)
	dm.pollT = time.NewTicker(poll)
}

// pokeOnNews pokes w when ctx is done, and when a signal comes on hup,
// which it hands on through the channel it returns for the loop to read
// between passes: an idle daemon waiting in w sees either at once. stop
// returns once no poke can come any more, so that w can be released. It
// logs each SIGHUP as it takes it: from then on the reload applies to the
// next batch sent (reloadIfAsked), and whoever sent the signal can see
// when the daemon had it.
func pokeOnNews(ctx context.Context, hup <-chan os.Signal, w *wakeListener, log *slog.Logger) (out <-chan os.Signal, stop func()) {
	var fwd chan os.Signal
	if hup != nil {
		fwd = make(chan os.Signal, 1)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case s := <-hup:
				select {
				case fwd <- s:
				default: // One reload pending covers them all.
				}
				// Said once the loop can see it: from here on it applies.
				log.Info("reload asked (SIGHUP)")
				w.poke()
			case <-ctx.Done():
				w.poke()
				<-quit
				return
			case <-quit:
				return
			}
		}
	}()
	return fwd, func() {
		close(quit)
		<-done
	}
}

// walIndexHeader is the first 48 bytes of the outbox's WAL index
// (outbox.db-shm): SQLite's header, whose change counter, frame count and
// salts move with every commit by any connection ("The WAL-Index Format" in
// SQLite's file format document). It is read with one pread, no SQLite
// code. A writer may update it meanwhile; a torn read differs.
type walIndexHeader [48]byte

func (o *outbox) readWALIndexHeader() (walIndexHeader, error) {
	var h walIndexHeader
	if o.shm == nil {
		f, err := openShared(o.path+"-shm", os.O_RDONLY, 0)
		if err != nil {
			return h, err
		}
		o.shm = f
	}
	_, err := o.shm.ReadAt(h[:], 0)
	return h, err
}
