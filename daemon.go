package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
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

const runUsage = `
Usage: difflore run [--detach] [--endpoint URL] [--batch N] [--tick DUR]

Runs the delivery daemon of this data home: it drains the outbox in batches
to the endpoint until stopped (SIGTERM or SIGINT, or 'difflore stop'). One
daemon runs per data home; a second exits 1. With no endpoint the daemon runs
and keeps events queued. What no flag sets comes from the environment, then
from config.toml in the data home ('difflore config -h').

Examples:
  difflore run --endpoint https://ingest.example.com/v1/events
  difflore run --detach --endpoint file:///tmp/events.jsonl
  difflore run --endpoint otlp+http://127.0.0.1:4318   # an OpenTelemetry Collector
`

// runOptions are the daemon's settings after flags, environment and
// config.toml.
type runOptions struct {
	endpoint       string
	endpointSource string // flag, env, config or none
	token          string
	batch          int
	batchGiven     bool // by --batch, not by config.toml or the default
	redact         redactOptions
	warnings       []string // about config.toml, for the log
	tick           time.Duration
	allowInsecure  bool
	logLevel       slog.Level
}

func cmdRun(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "run", runUsage)
	detach := fl.Bool("detach", false, "start the daemon in the background and return once it is ready")
	var opts runOptions
	endpoint := fl.String("endpoint", "", "ingest `URL` (http, https, otlp+http, otlp+https or file:); default $DIFFLORE_CLOUD_URL, then endpoint in config.toml")
	fl.IntVar(&opts.batch, "batch", defaultBatch, "most events in one request, `N` from 1 to 10000; default batch in config.toml, then 100")
	fl.DurationVar(&opts.tick, "tick", 75*time.Millisecond, "how often an idle daemon looks for new events where the OS gives no notice of them (`DUR`, 10ms to 10s; on Linux, inotify wakes it at once and it looks every second besides)")
	fl.BoolVar(&opts.allowInsecure, "allow-insecure", false, "allow plain http to a host that is not loopback")
	logLevel := fl.String("log-level", "info", "log `level`: debug, info, warn or error")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("run takes no arguments, got %q", fl.Arg(0))
	}
	if opts.batch < 1 || opts.batch > 10000 {
		return usageError("--batch %d: want 1 to 10000", opts.batch)
	}
	if err := opts.settle(cfg, fl, *endpoint); err != nil {
		return err
	}
	if err := opts.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	if opts.tick < 10*time.Millisecond || opts.tick > 10*time.Second {
		return usageError("--tick %s: want 10ms to 10s", opts.tick)
	}
	s, err := parseEndpoint(opts.endpoint, opts.token, buildVersion(), opts.allowInsecure)
	if err != nil {
		return err
	}
	h, err := openHome(cfg.home, true)
	if err != nil {
		return err
	}
	if *detach {
		return startDetached(ctx, cfg, h, opts)
	}
	return runDaemon(ctx, cfg, h, s, opts)
}

// settle completes the options the flags gave with the settings of the
// environment and config.toml, for what no flag set.
func (o *runOptions) settle(cfg config, fl *flag.FlagSet, endpoint string) error {
	st, err := cfg.settings()
	if err != nil {
		return err
	}
	st.withEndpointFlag(endpoint, flagGiven(fl, "endpoint"))
	if !flagGiven(fl, "endpoint") && cfg.getenv(detachedEnv) != "" && cfg.getenv(detachedEndpointEnv) != "" {
		// The endpoint a 'run --detach' was given, passed on out of argv.
		st.endpoint, st.endpointSource = cfg.getenv(detachedEndpointEnv), fromFlag
	}
	o.batchGiven = flagGiven(fl, "batch")
	if !o.batchGiven {
		o.batch = st.batch
	}
	o.endpoint, o.endpointSource, o.token = st.endpoint, st.endpointSource, st.token
	o.redact, o.warnings = st.redact, st.warnings
	return nil
}

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

	detached := cfg.getenv(detachedEnv) != ""
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
	if err := takeLock(ctx, h, lock, cfg.waits.settle); err != nil {
		return err
	}
	defer lock.Unlock()

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

	info, err := writePIDFile(h, lock, s)
	if err != nil {
		return err
	}
	defer os.Remove(h.path(pidFileName))

	endpoint := "(none)"
	if s != nil {
		endpoint = s.String()
	}
	for _, w := range opts.warnings {
		log.Warn(w)
	}
	ob, err := startOutbox(ctx, h, endpoint, opts.endpointSource, log)
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
	if err := d.setRedaction(opts.redact); err != nil {
		return err
	}
	dm := &daemon{h: h, ob: ob, d: d, log: log, tick: opts.tick, waits: cfg.waits}
	// The daemon owns the outbox from here on, and may replace it with a
	// reopened one: close the one it has at the end.
	defer func() { dm.ob.Close() }()
	if n, err := removeStaleSpillTemps(h, time.Now()); err != nil {
		log.Warn("remove stale spill temporary files", "error", err)
	} else if n > 0 {
		log.Info("removed temporary files left in the spill folder by killed enqueues", "files", n, "older_than", spillTempStale)
	}
	if converted, err := ob.ensureAutoVacuum(); err != nil {
		log.Warn("turn on auto_vacuum", "error", err)
	} else if converted {
		log.Info("turned on incremental auto_vacuum in the outbox")
	}

	log.Info("daemon ready", "pid", info.PID, "version", info.Version, "endpoint", endpoint, "endpoint_source", opts.endpointSource, "home", h.dir)
	if s == nil {
		log.Warn("no endpoint: events stay queued", "hint", "run 'difflore config set endpoint URL', or set DIFFLORE_CLOUD_URL or --endpoint")
	}
	if cfg.getenv(detachedEnv) == "1" {
		reportReady(cfg, info.PID, logFile, log)
	}

	err = dm.loop(ctx)
	log.Info("daemon stopped", "pid", info.PID)
	return err
}

// notifiedPoll is how often an idle daemon polls PRAGMA data_version when
// the OS tells it about commits (watchCommits): a fallback, in case a
// notice is ever missed, that costs next to nothing.
const notifiedPoll = time.Second

// outboxRecheck is how often an idle daemon looks again for what no cheap
// check announces: an outbox file deleted or replaced under it.
const outboxRecheck = 5 * time.Second

// commitSettle is how long after a commit notice the daemon looks again
// when the commit was not yet visible at the notice.
const commitSettle = 5 * time.Millisecond

// daemon is the drain loop of a running daemon and what it keeps from one
// turn to the next. It owns the outbox, which housekeep replaces when the
// file was deleted or replaced under it.
type daemon struct {
	h     home
	ob    *outbox
	d     *drainer
	log   *slog.Logger
	tick  time.Duration // the idle poll the flag sets, and the vacuum's pace
	waits waits

	changes     <-chan struct{} // commit notices, nil where the OS gives none
	poll        *time.Ticker
	lastVersion int64      // PRAGMA data_version when last looked at
	lastSpill   time.Time  // when housekeep last ran
	spillStamp  time.Time  // the spill folder's modification time
	backlog     spillRound // what replay moved since the spill folder was last cleared
	dbErrors    int        // outbox errors in a row
	lastHeal    time.Time  // when a corrupt outbox was last salvaged
	vacuumDue   bool       // free pages may be left to give back
}

// loop delivers until ctx is done. Each turn does the housekeeping that is
// due, delivers one batch, and when there was nothing to send gives free
// pages back and sleeps until the earliest of: a commit by another process
// (announced by watchCommits where the OS can, and found by PRAGMA
// data_version, polled every tick — microseconds each), the next event's
// available_at, or the end of a pause or open breaker.
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

	poll := dm.tick
	changes, stopWatch, err := watchCommits(dm.h)
	if err == nil {
		defer stopWatch()
		dm.changes = changes
		poll = max(poll, notifiedPoll)
	} else if !errors.Is(err, errors.ErrUnsupported) {
		dm.log.Warn("no commit notices; polling", "every", poll, "error", err)
	}
	dm.poll = time.NewTicker(poll)
	defer dm.poll.Stop()
	if dm.lastVersion, err = dm.ob.dataVersion(); err != nil {
		return fmt.Errorf("read outbox: %w", err)
	}
	dm.spillStamp = modTime(dm.h.path(spillDirName))
	for ctx.Err() == nil {
		if time.Since(dm.lastSpill) >= time.Second || dm.backlog.more {
			dm.housekeep(ctx)
		}
		sent, err := dm.d.step(reqCtx)
		if err != nil && dm.healDue(err) {
			if err := dm.heal(err); err != nil {
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
		if dm.vacuumDue {
			dm.vacuumStep()
		}
		wake := dm.nextWake()
		dm.waitIdle(ctx, wake)
		if wake != nil {
			wake.Stop()
		}
	}
	// Shutting down: claims of a request cut short were given back by
	// deliver; nothing else is in flight.
	return nil
}

// housekeep reopens the outbox when its file was deleted or replaced, and
// moves one bounded round of spilled events into it. One round per turn of
// the loop, a delivery between rounds: a backlog of spill files neither
// holds events back nor keeps the daemon from stopping.
func (dm *daemon) housekeep(ctx context.Context) {
	dm.lastSpill = time.Now()
	if dm.ob.replaced() {
		if err := dm.reopenOutbox(); err != nil {
			dm.log.Error("outbox file replaced; reopen", "error", err)
		} else {
			dm.log.Warn("outbox file replaced; reopened it", "path", dm.ob.path)
			dm.lastVersion, _ = dm.ob.dataVersion()
		}
	}
	r, err := replaySpill(ctx, dm.h, dm.ob)
	if err != nil {
		dm.log.Error("replay spilled events", "error", err)
	}
	if err != nil && dm.healDue(err) {
		if herr := dm.heal(err); herr != nil {
			dm.log.Error("reopen the outbox", "error", herr)
		}
	}
	dm.backlog = spillRound{moved: dm.backlog.moved + r.moved, dead: dm.backlog.dead + r.dead, more: r.more && err == nil}
	if !dm.backlog.more && dm.backlog.moved > 0 {
		dm.log.Info("replayed spilled events", "events", dm.backlog.moved, "dead_letters", dm.backlog.dead)
		dm.backlog = spillRound{}
	}
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
func (dm *daemon) vacuumStep() {
	freed, left, err := dm.ob.vacuum(vacuumStep)
	if err != nil {
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

// nextWake is a timer for when delivery can go on without news: the next
// event's available_at, or the end of a pause or open breaker, whichever is
// later. It is nil when nothing waits for a time, or there is no endpoint.
func (dm *daemon) nextWake() *time.Timer {
	if dm.d.sink == nil {
		return nil
	}
	at, ok, err := dm.ob.nextAvailable()
	if err != nil {
		dm.log.Error("outbox", "error", err)
	}
	if !ok {
		return nil
	}
	if hold := dm.d.holdUntil(); hold.After(at) {
		at = hold
	}
	return time.NewTimer(time.Until(at))
}

// waitIdle sleeps until ctx is done, wake fires, a vacuum step is due, or
// something changed: another process committed to the outbox, an event was
// spilled, or it is time to look again for an outbox file deleted or
// replaced under the daemon.
func (dm *daemon) waitIdle(ctx context.Context, wake *time.Timer) {
	var wakeC, vacuumNext, settle <-chan time.Time
	if wake != nil {
		wakeC = wake.C
	}
	if dm.vacuumDue {
		// Shrink at the pace of the poll the flag sets, not at the slower
		// fallback poll that commit notices allow.
		vacuumNext = time.After(dm.tick)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-wakeC:
			return
		case <-vacuumNext:
			return
		case <-dm.changes:
			// The daemon's own commits (acks, vacuum) write the WAL too;
			// only another process's commit changes data_version.
			if dm.outboxChanged() {
				return
			}
			// A notice can come before its commit is visible: the WAL
			// frames are written before the WAL index says so, and the
			// index (shared memory) sends no notice. Look once more just
			// after.
			if settle == nil {
				settle = time.After(commitSettle)
			}
		case <-settle:
			settle = nil
			if dm.outboxChanged() {
				return
			}
		case <-dm.poll.C:
			if dm.outboxChanged() || dm.spilledOrDue() {
				return
			}
		}
	}
}

// outboxChanged reports whether another process committed to the outbox
// since the daemon last looked (or the outbox cannot be read, which the
// next turn reports).
func (dm *daemon) outboxChanged() bool {
	v, err := dm.ob.dataVersion()
	if err != nil || v != dm.lastVersion {
		dm.lastVersion = v
		return true
	}
	return false
}

// spilledOrDue reports whether housekeeping is due: an event was spilled
// (which changes the spill folder's time: one stat a tick notices it, where
// a scan would cost more; housekeep then runs at once), or every few
// seconds, to look again for what no cheap check announces, an outbox file
// deleted or replaced under the daemon.
func (dm *daemon) spilledOrDue() bool {
	if m := modTime(dm.h.path(spillDirName)); !m.Equal(dm.spillStamp) {
		dm.spillStamp, dm.lastSpill = m, time.Time{}
		return true
	}
	return time.Since(dm.lastSpill) >= dm.waits.recheck
}
