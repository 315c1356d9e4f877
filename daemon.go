package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// shutdownGrace bounds what a stopping daemon still does: finish the request
// in flight and give back its claims. It is well under stop's default grace,
// so a graceful stop does not end in a hard kill.
const shutdownGrace = 5 * time.Second

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
	ob, err := startOutbox(ctx, h, endpoint, opts.endpointSource, cfg.waits, cfg.healOpts(), log)
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
	batch := opts.batch
	if len(opts.sinks) > 0 && opts.sinks[0].name != defaultSinkName {
		batch = opts.sinks[0].batch
	}
	d := newDrainer(ob, s, batch, log, time.Now)
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

	dm.runCtx = ctx
	dm.startRunners(ctx)
	err = dm.loop(ctx)
	dm.stopRunners()
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

	runners *runners        // the secondary sinks' drainers (sinkrunner.go), nil when stopped
	runCtx  context.Context // the context they run in, nil before they start
	wmu     sync.Mutex      // the write transactions of the daemon's connections take turns on it (outbox.begin)
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
		dm.hup, stopPokes = pokeOnNews(ctx, dm.hup, w, dm.log)
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
		dm.pokeRunners()
		// One line per pass, at debug level: what tests count to see that
		// a burst of wake-ups costs a few passes, not one each.
		dm.log.Debug("drain pass")
		if time.Since(dm.lastSpill) >= time.Second || dm.backlog.more || dm.evictMore {
			dm.housekeep(ctx)
		}
		sent, err := dm.d.run(ctx, reqCtx)
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
