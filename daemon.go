package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// shutdownGrace bounds what a stopping daemon still does: finish the request
// in flight and give back its claims. It is well under stop's default grace,
// so a graceful stop does not end in a hard kill.
const shutdownGrace = 5 * time.Second

// vacuumStep is how many free pages the daemon gives back to the file
// system in one idle moment: bounded, so that an enqueue never waits long
// behind it.
const vacuumStep = 4096

// runDaemon is the daemon: take the lock, publish the PID file, drain until
// stopped, then clean up in the reverse order. Every exit path goes through
// the deferred cleanup, so the lock is released last.
func runDaemon(ctx context.Context, cfg config, h home, s sink, opts runOptions) error {
	// Go ends a program that writes to a broken pipe on fd 1 or 2 with
	// SIGPIPE, unless the program handles that signal. A foreground daemon
	// whose output goes to a pipe that closes ('difflore run 2>&1 | head
	// -1', a log collector that exits) would die in the middle of a
	// delivery. Handled, such a write fails with EPIPE instead: the log line
	// is lost and the daemon goes on. The channel is never read; the signal
	// package drops what does not fit.
	brokenPipe := make(chan os.Signal, 1)
	signal.Notify(brokenPipe, syscall.SIGPIPE)
	defer signal.Stop(brokenPipe)

	// A Windows service has no standard error anyone reads.
	detached := cfg.getenv(detachedEnv) != "" || opts.service
	var logOut io.Writer = cfg.stderr
	var logFile *rotatingFile
	if detached {
		f, err := openRotatingFile(h.path(logFileName), defaultLogMax, defaultLogKeep)
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		defer f.Close()
		logFile, logOut = f, f
	}
	log := newLogger(logOut, detached, opts.logLevel)

	lock := newLock(h)
	cfg.pauseAt("run-start")
	if err := lockOrTakeOver(ctx, cfg, h, lock, opts.takeover, log); err != nil {
		return err
	}
	defer lock.Unlock()
	cfg.pauseAt("run-locked")

	// Listen for stop requests before the PID file names us: 'stop' acts on
	// the PID file, and a request sent before we listen would be lost (the
	// Windows stop event would not exist yet) or kill us without cleanup
	// (SIGTERM's default action on Unix). The deferred stop runs after the
	// PID file is removed, so we listen for as long as it names us.
	ctx, stop, err := stopContext(ctx)
	if err != nil {
		return err
	}
	defer stop()
	ctx, hup, stopHup := onHangup(ctx, cfg, detached, log)
	defer stopHup()

	info, err := writePIDFile(h, lock, s)
	if err != nil {
		return err
	}
	defer os.Remove(h.path(pidFileName))
	cfg.pauseAt("run-pid-written")

	endpoint := "(none)"
	if s != nil {
		endpoint = s.String()
	}
	for _, w := range opts.warnings {
		log.Warn(w)
	}
	ob, err := startOutbox(ctx, h, endpoint, opts.endpointSource, cfg.healOpts(), log)
	if err != nil && ctx.Err() != nil {
		// Asked to stop while it waited for the outbox: a graceful stop.
		log.Info("daemon stopped", "pid", info.PID)
		return nil
	}
	if err != nil {
		// Retrying would not help: a damaged or unwritable outbox needs a
		// person. enqueue keeps new events in spill/ meanwhile.
		return &exitError{code: 1, err: err,
			hint: fmt.Sprintf("%s must be a SQLite database this user can write; events queued meanwhile are kept in %s",
				h.path(dbFileName), h.path(spillDirName))}
	}
	d := newDrainer(ob, s, opts.batch, log, time.Now)
	d.pauseAt = cfg.pauseAt
	if err := d.setRedaction(opts.redact); err != nil {
		return err
	}
	lim := newLimiter(opts.limits, h, time.Now, log)
	lim.taking = d.taking
	dm := &daemon{h: h, ob: ob, d: d, log: log, tick: opts.tick, waits: cfg.waits, now: time.Now,
		lim: lim, cfg: cfg, opts: opts, logFile: logFile, hup: hup}
	// The daemon owns the outbox from here on, and may replace it with a
	// reopened one: close the one it has at the end.
	defer func() { dm.ob.Close() }()
	dm.prepare()

	log.Info("daemon ready", "pid", info.PID, "version", info.Version, "endpoint", endpoint, "endpoint_source", opts.endpointSource, "home", h.dir)
	clearStartFailure(h)
	if s == nil {
		log.Warn("no endpoint: events stay queued", "hint", "run 'difflore config set endpoint URL', or set DIFFLORE_CLOUD_URL or --endpoint")
	}
	if cfg.getenv(detachedEnv) == "1" {
		// 'run --detach' returns once the daemon has made its first
		// delivery pass over what was pending, so that what a user looks
		// at next (the endpoint, status) already shows it; a backlog
		// longer than one pass, or an endpoint that hangs, holds the
		// report back for waits.firstPass at most.
		ready := sync.OnceFunc(func() { reportReady(cfg, info.PID, logFile, log) })
		t := time.AfterFunc(cfg.waits.firstPass, ready)
		defer t.Stop()
		dm.ready = ready
	}
	if err := sdNotify(cfg.getenv, "READY=1"); err != nil {
		log.Warn("tell systemd the daemon is ready", "error", err)
	}

	err = dm.loop(ctx)
	if err := sdNotify(cfg.getenv, "STOPPING=1"); err != nil {
		log.Warn("tell systemd the daemon is stopping", "error", err)
	}
	log.Info("daemon stopped", "pid", info.PID)
	return err
}

// prepare does what a daemon does once before its loop: remove the spill
// folder's temporary files that killed enqueues left, and turn on
// incremental auto_vacuum in an outbox made before it was the default.
func (dm *daemon) prepare() {
	if n, err := removeStaleSpillTemps(dm.h, time.Now()); err != nil {
		dm.log.Warn("remove stale spill temporary files", "error", err)
	} else if n > 0 {
		dm.log.Info("removed temporary files left in the spill folder by killed enqueues", "files", n, "older_than", spillTempStale)
	}
	if converted, err := dm.ob.ensureAutoVacuum(); err != nil {
		dm.log.Warn("turn on auto_vacuum", "error", err)
	} else if converted {
		dm.log.Info("turned on incremental auto_vacuum in the outbox")
	}
}

// firstPassWait bounds how long a detached daemon's first delivery pass
// holds back its ready report (and so 'run --detach'), well within the
// parent's readyTimeout.
const firstPassWait = 5 * time.Second

// unwatchedPoll is the most an idle daemon sleeps when it cannot listen
// for wake-ups (listenWake failed): it then finds new events by polling.
const unwatchedPoll = time.Second

// quietLook is the debug line of a safety-net look that found nothing new.
const quietLook = "safety net: nothing new"

// idleLine is the debug line of a daemon that goes to sleep until news or
// a time: what a test waits for to know that the daemon is idle.
const idleLine = "idle: waiting for wake-ups"

// vacuumPace is how soon an idle daemon comes back to shrink the outbox by
// another vacuumStep while free pages are left.
const vacuumPace = 75 * time.Millisecond

// daemon is the drain loop of a running daemon and what it keeps from one
// turn to the next. It owns the outbox, which housekeep replaces when the
// file was deleted or replaced under it.
type daemon struct {
	h     home
	ob    *outbox
	d     *drainer
	log   *slog.Logger
	tick  time.Duration // the safety-net poll the flag sets
	waits waits
	now   func() time.Time // the clock that paces salvages (healDue)

	cfg     config           // to read config.toml again
	opts    runOptions       // the settings in use
	logFile *rotatingFile    // daemon.log, nil when logging to stderr
	hup     <-chan os.Signal // SIGHUP: reload, nil where it stops the daemon or there is none

	wake      *wakeListener // enqueue's wake-ups, nil when the daemon cannot listen
	pollT     *time.Ticker  // what stands in for wake, nil while it works
	lastSpill time.Time     // when housekeep or a quiet safety-net look last ran; zero makes housekeep due
	seenOb    *outbox       // the outbox housekeep last looked at, and
	seenVer   int64         // its data_version then (markIdle)
	backlog   spillRound    // what replay moved since the spill folder was last cleared
	dbErrors  int           // outbox errors in a row
	lastHeal  time.Time     // when a corrupt outbox was last salvaged
	vacuumDue bool          // free pages may be left to give back
	ready     func()        // called once the first pass has left nothing to send now, then nil
	lim       *limiter      // max_size, max_age: see limits.go
	evictMore bool          // the last eviction run stopped at its bound

	spillUnreadable int // spill files the last pass of replay could not read, as status shows
	reloads         int // SIGHUPs handled, the generation the reload logs
}

// loop delivers until ctx is done. Each turn does the housekeeping that is
// due, delivers one batch, and when there was nothing to send gives free
// pages back and sleeps until the earliest of: a wake-up from enqueue
// (notify.go), the next event's available_at, the end of a pause or open
// breaker, or the safety-net tick, which looks at everything (outbox, spill
// folder, the outbox file replaced) in case a wake-up was never sent.
func (dm *daemon) loop(ctx context.Context) error {
	// Requests get their own context: on shutdown the one in flight has
	// shutdownGrace to finish before it is cancelled.
	reqCtx, cancelReq := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReq()
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(dm.waits.shutdownGrace, cancelReq)
		context.AfterFunc(reqCtx, func() { t.Stop() })
	})
	defer stopAfter()

	// An idle daemon waits in the wake listener (notify.go): its stop and
	// SIGHUP, which come on channels, poke it. A ticker stands in only
	// when the daemon cannot listen.
	if w, err := listenWake(dm.h); err == nil {
		dm.wake = w
		var stopPokes func()
		dm.hup, stopPokes = pokeOnNews(ctx, dm.hup, w)
		defer func() {
			stopPokes()
			w.release()
		}()
	} else {
		dm.pollInstead(err)
	}
	defer func() {
		if dm.pollT != nil {
			dm.pollT.Stop()
		}
	}()
	dm.d.beforeSend = dm.reloadIfAsked
	for ctx.Err() == nil {
		dm.reloadIfAsked()
		// One line per pass, at debug level: what tests count to see that
		// a burst of wake-ups costs a few passes, not one each.
		dm.log.Debug("drain pass")
		if time.Since(dm.lastSpill) >= time.Second || dm.backlog.more || dm.evictMore {
			dm.housekeep(ctx)
		}
		sent, err := dm.d.step(reqCtx)
		if err != nil && dm.healDue(err) {
			if err := dm.heal(ctx, err); err != nil {
				return fmt.Errorf("heal corrupt outbox: %w", err)
			}
			continue
		}
		if err != nil {
			if !dm.backOff(ctx, err) {
				break
			}
			continue
		}
		dm.dbErrors = 0
		if sent {
			dm.vacuumDue = true
			continue
		}
		if dm.backlog.more {
			continue
		}
		if dm.limitStep(false); dm.evictMore {
			continue
		}
		if dm.ready != nil {
			dm.ready()
			dm.ready = nil
		}
		if dm.vacuumDue {
			dm.vacuumStep(ctx)
		}
		dm.waitIdle(ctx)
	}
	// Shutting down: claims of a request cut short were given back by
	// deliver; nothing else is in flight.
	return nil
}

// reloadIfAsked reloads when a SIGHUP is waiting to be handled. The loop
// asks at the top of each turn, and the drainer again between the claim of
// a batch and its sending: a turn's housekeeping, or a claim waiting for
// the outbox's write lock, can take seconds under load, and a SIGHUP that
// came meanwhile must apply to what that claim took (an event queued after
// the signal went once to the old endpoint).
func (dm *daemon) reloadIfAsked() {
	select {
	case <-dm.hup:
		dm.reload()
	default:
	}
}

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
	dm.ob.Close()
	dm.ob, dm.d.ob = nob, nob
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
// something (nothingNew).
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
// no SQLite code. On a process gone cold after minutes asleep, even those
// took from 0.1 to 2 ms each, a drain pass or a query that SQLite parses
// far longer, and the Go runtime's monitor thread wakes every 100 µs or so
// for as long (BENCHMARKS.md).
func (dm *daemon) nothingNew(m idleMark) bool {
	if dm.ob.replaced() {
		return false
	}
	if m.ok {
		if h, err := dm.ob.readWALIndexHeader(); err != nil || h != m.hdr {
			return false
		}
	} else if v, err := dm.ob.pragmaInt("data_version"); err != nil || v != dm.seenVer {
		return false
	}
	if n, err := countSpilled(dm.h); err != nil || n > 0 {
		return false
	}
	return !dm.lim.dueWithoutNews(m.pending)
}

// idleMark is what the safety net compares with while the daemon is idle:
// the outbox's WAL-index header when it went idle, if it could be read
// (else SQLite's data_version stands in).
type idleMark struct {
	hdr     walIndexHeader
	ok      bool
	pending bool // some event was pending: the free disk space counts
}

// markIdle takes the mark as the daemon goes idle: the WAL-index header
// first, then SQLite's data_version, which must still be what housekeeping
// saw (its commits are the daemon's own, which data_version does not
// count). news is true when it is not, or housekeeping has not looked at
// this outbox: another connection committed during the turn, perhaps with
// no wake-up, and a pass must look now. When data_version cannot be read
// at all, there is no news: a pass would read it no better, and the
// safety net's looks go on.
func (dm *daemon) markIdle() (m idleMark, news bool) {
	var err error
	m.hdr, err = dm.ob.readWALIndexHeader()
	m.ok = err == nil
	v, err := dm.ob.pragmaInt("data_version")
	return m, err == nil && (dm.seenOb != dm.ob || v != dm.seenVer)
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
// returns once no poke can come any more, so that w can be released.
func pokeOnNews(ctx context.Context, hup <-chan os.Signal, w *wakeListener) (out <-chan os.Signal, stop func()) {
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
