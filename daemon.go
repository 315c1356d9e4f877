package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"zombiezen.com/go/sqlite"
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
and keeps events queued.

Examples:
  difflore run --endpoint https://ingest.example.com/v1/events
  difflore run --detach --endpoint file:///tmp/events.jsonl
  difflore run --endpoint otlp+http://127.0.0.1:4318   # an OpenTelemetry Collector
`

// runOptions are the daemon's settings after flags and environment.
type runOptions struct {
	endpoint      string
	token         string
	batch         int
	tick          time.Duration
	allowInsecure bool
	logLevel      slog.Level
}

func cmdRun(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "run", runUsage)
	detach := fl.Bool("detach", false, "start the daemon in the background and return once it is ready")
	opts := runOptions{token: cfg.token}
	fl.StringVar(&opts.endpoint, "endpoint", cfg.endpoint, "ingest `URL` (http, https, otlp+http, otlp+https or file:); default $DIFFLORE_CLOUD_URL")
	fl.IntVar(&opts.batch, "batch", defaultBatch, "most events in one request, `N` from 1 to 10000")
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
	if err := takeLock(ctx, h, lock, settleTime); err != nil {
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

	lockID, err := heldLockID(lock)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	exe, _ := os.Executable()
	info := pidInfo{PID: os.Getpid(), StartedAt: selfStartTime(), Exe: exe, Version: buildVersion(), Lock: lockID}
	if s != nil {
		info.Endpoint = s.String()
	}
	pidPath := h.path(pidFileName)
	if fi, err := os.Lstat(pidPath); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("pid file %q is not a regular file; refusing to replace it", pidPath)
	}
	if err := writeFileAtomic(pidPath, formatPIDFile(info)); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	defer os.Remove(pidPath)

	endpoint := "(none)"
	if s != nil {
		endpoint = s.String()
	}
	ob, err := startOutbox(ctx, h, endpoint, log)
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
	defer ob.Close()
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

	log.Info("daemon ready", "pid", info.PID, "version", info.Version, "endpoint", endpoint, "home", h.dir)
	if s == nil {
		log.Warn("no endpoint: events stay queued", "hint", "set DIFFLORE_CLOUD_URL or --endpoint")
	}
	if cfg.getenv(detachedEnv) == "1" {
		reportReady(cfg, info.PID, logFile, log)
	}

	d := newDrainer(ob, s, opts.batch, log, time.Now)
	err = drainLoop(ctx, h, ob, d, opts.tick, log)
	log.Info("daemon stopped", "pid", info.PID)
	return err
}

// startBusy is how long the daemon's first look at the outbox waits for
// a lock another process holds before it says that it waits (and looks
// for a stop request); outboxBusy is the wait once it runs.
const (
	startBusy  = time.Second
	outboxBusy = 5 * time.Second
)

// startOutbox opens the outbox for the daemon, gives back the claims of a
// daemon that died, and records the endpoint for status. Another process
// may hold the outbox locked for a while (an sqlite3 shell in a
// transaction, a backup): then the daemon says so in its log and tries
// again, backing off to every 30 s, until it gets in or ctx is done. Only
// another error is returned: giving up on a locked outbox would leave the
// events queued in it undelivered.
func startOutbox(ctx context.Context, h home, endpoint string, log *slog.Logger) (*outbox, error) {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		ob, err := openOutbox(h, startBusy, time.Now)
		if err == nil {
			err = ob.resetInflight()
			if err == nil {
				err = ob.setMeta(map[string]string{"endpoint": endpoint, "paused_reason": "", "paused_since": "", "breaker": "closed"})
				if err != nil {
					err = fmt.Errorf("write status: %w", err)
				}
			}
			if err == nil {
				ob.conn.SetBusyTimeout(outboxBusy)
				return ob, nil
			}
			ob.Close()
		}
		if code := sqlite.ErrCode(err).ToPrimary(); code != sqlite.ResultBusy && code != sqlite.ResultLocked {
			return nil, err
		}
		log.Warn("outbox is locked by another process; waiting for it", "path", h.path(dbFileName), "retry_in", wait.String(), "error", err)
		if !sleepCtx(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// notifiedPoll is how often an idle daemon polls PRAGMA data_version when
// the OS tells it about commits (watchCommits): a fallback, in case a
// notice is ever missed, that costs next to nothing.
const notifiedPoll = time.Second

// commitSettle is how long after a commit notice the daemon looks again
// when the commit was not yet visible at the notice.
const commitSettle = 5 * time.Millisecond

// drainLoop delivers until ctx is done. When there is nothing to send it
// sleeps until the earliest of: a commit by another process (announced by
// watchCommits where the OS can, and found by PRAGMA data_version, polled
// every tick — microseconds each), the next event's available_at, or the end
// of a pause or open breaker.
func drainLoop(ctx context.Context, h home, ob *outbox, d *drainer, tick time.Duration, log *slog.Logger) error {
	// Requests get their own context: on shutdown the one in flight has
	// shutdownGrace to finish before it is cancelled.
	reqCtx, cancelReq := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReq()
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(shutdownGrace, cancelReq)
		context.AfterFunc(reqCtx, func() { t.Stop() })
	})
	defer stopAfter()

	vacuumPace := tick
	changes, stopWatch, err := watchCommits(h)
	if err == nil {
		defer stopWatch()
		tick = max(tick, notifiedPoll)
	} else if !errors.Is(err, errors.ErrUnsupported) {
		log.Warn("no commit notices; polling", "every", tick, "error", err)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	lastVersion, err := ob.dataVersion()
	if err != nil {
		return fmt.Errorf("read outbox: %w", err)
	}
	var lastSpill time.Time
	spillDir := h.path(spillDirName)
	spillStamp := modTime(spillDir)
	var backlog spillRound // what replay moved since the spill folder was last cleared
	dbErrors := 0
	vacuumDue := false
	for ctx.Err() == nil {
		if now := time.Now(); now.Sub(lastSpill) >= time.Second || backlog.more {
			lastSpill = now
			if ob.replaced() {
				if err := reopenOutbox(h, ob, d); err != nil {
					log.Error("outbox file replaced; reopen", "error", err)
				} else {
					log.Warn("outbox file replaced; reopened it", "path", ob.path)
					lastVersion, _ = ob.dataVersion()
				}
			}
			// One bounded round per turn of the loop, a delivery between
			// rounds: a backlog of spill files neither holds events back
			// nor keeps the daemon from stopping.
			r, err := replaySpill(ctx, h, ob)
			if err != nil {
				log.Error("replay spilled events", "error", err)
			}
			backlog = spillRound{moved: backlog.moved + r.moved, dead: backlog.dead + r.dead, more: r.more && err == nil}
			if !backlog.more && backlog.moved > 0 {
				log.Info("replayed spilled events", "events", backlog.moved, "dead_letters", backlog.dead)
				backlog = spillRound{}
			}
		}
		sent, err := d.step(reqCtx)
		if err != nil {
			dbErrors++
			log.Error("outbox", "error", err)
			if !sleepCtx(ctx, min(time.Duration(dbErrors)*time.Second, 30*time.Second)) {
				break
			}
			continue
		}
		dbErrors = 0
		if sent {
			vacuumDue = true
			continue
		}
		if backlog.more {
			continue
		}
		if vacuumDue {
			// Give free pages back a bounded step at a time (16 MiB with
			// 4 KiB pages), and come back on the next tick while some are
			// left: one step after a burst left a drained million-event
			// outbox at nearly its peak size.
			freed, left, err := ob.vacuum(vacuumStep)
			if err != nil {
				log.Warn("vacuum", "error", err)
			}
			vacuumDue = err == nil && left > 0
			if err == nil && freed > 0 && left == 0 {
				// Done with a shrink: hand the WAL's space back too, or it
				// stays at journal_size_limit as long as the daemon runs.
				if err := ob.truncateWAL(); err != nil {
					log.Warn("checkpoint", "error", err)
				}
			}
		}
		var wake <-chan time.Time
		var timer *time.Timer
		if d.sink != nil {
			at, ok, err := ob.nextAvailable()
			if err != nil {
				log.Error("outbox", "error", err)
			}
			if hold := d.holdUntil(); ok && hold.After(at) {
				at = hold
			}
			if ok {
				timer = time.NewTimer(time.Until(at))
				wake = timer.C
			}
		}
		var vacuumNext <-chan time.Time
		if vacuumDue {
			// Shrink at the pace of the poll the flag sets, not at the
			// slower fallback poll that commit notices allow.
			vacuumNext = time.After(vacuumPace)
		}
		var settle <-chan time.Time
	idle:
		for {
			select {
			case <-ctx.Done():
				break idle
			case <-wake:
				break idle
			case <-vacuumNext:
				break idle
			case <-changes:
				// The daemon's own commits (acks, vacuum) write the WAL
				// too; only another process's commit changes data_version.
				if v, err := ob.dataVersion(); err != nil || v != lastVersion {
					lastVersion = v
					break idle
				}
				// A notice can come before its commit is visible: the WAL
				// frames are written before the WAL index says so, and
				// the index (shared memory) sends no notice. Look once
				// more just after.
				if settle == nil {
					settle = time.After(commitSettle)
				}
			case <-settle:
				settle = nil
				if v, err := ob.dataVersion(); err != nil || v != lastVersion {
					lastVersion = v
					break idle
				}
			case <-ticker.C:
				v, err := ob.dataVersion()
				if err != nil || v != lastVersion {
					lastVersion = v
					break idle
				}
				// A spilled event changes the spill folder's time: one
				// stat a tick notices it, where a scan would cost more.
				if m := modTime(spillDir); !m.Equal(spillStamp) {
					spillStamp, lastSpill = m, time.Time{}
					break idle
				}
				// Every few seconds, look again for what no cheap check
				// announces: an outbox file deleted or replaced under us.
				if time.Since(lastSpill) >= 5*time.Second {
					break idle
				}
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
	// Shutting down: claims of a request cut short were given back by
	// deliver; nothing else is in flight.
	return nil
}

// modTime is a file's modification time, the zero time when it has none.
func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// reopenOutbox opens the outbox file now at the outbox's path and swaps it
// in place of the one that was deleted or replaced, so that the drainer and
// the daemon's deferred Close use the new connection. What the old file
// still held went with it.
func reopenOutbox(h home, ob *outbox, d *drainer) error {
	nob, err := openOutbox(h, 5*time.Second, ob.now)
	if err != nil {
		return err
	}
	endpoint := "(none)"
	if d.sink != nil {
		endpoint = d.sink.String()
	}
	if err := nob.setMeta(map[string]string{"endpoint": endpoint, "breaker": "closed"}); err != nil {
		nob.Close()
		return fmt.Errorf("write status: %w", err)
	}
	ob.Close()
	*ob = *nob
	return nil
}

// sleepCtx sleeps for d or until ctx is done, and reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
