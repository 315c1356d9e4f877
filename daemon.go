package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
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

// readyTimeout bounds how long 'run --detach' waits for the daemon to be ready.
const readyTimeout = 30 * time.Second

// detachedEnv marks a daemon started in the background: it logs JSON to
// daemon.log. With the value "1" ('run --detach'), it also reports readiness
// on standard output and then moves its output to daemon.log; with "quiet"
// ('enqueue --ensure-daemon', which does not wait), its output is the log
// already.
const detachedEnv = "DIFFLORE_DETACHED"

const runUsage = `
Usage: difflore run [--detach] [--endpoint URL] [--batch N] [--tick DUR]

Runs the delivery daemon of this data home: it drains the outbox in batches
to the endpoint until stopped (SIGTERM or SIGINT, or 'difflore stop'). One
daemon runs per data home; a second exits 1. With no endpoint the daemon runs
and keeps events queued. An idle daemon sleeps until enqueue wakes it (a
named pipe on Linux, macOS and FreeBSD, a named event on Windows); --tick is
only the safety-net poll behind that.

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
	fl.DurationVar(&opts.tick, "tick", 30*time.Second, "the safety-net poll: how often an idle daemon looks for events no wake-up announced (`DUR`, 10ms to 24h); enqueue wakes it at once through a named pipe (Linux, macOS, FreeBSD) or a named event (Windows)")
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
	if opts.tick < 10*time.Millisecond || opts.tick > 24*time.Hour {
		return usageError("--tick %s: want 10ms to 24h", opts.tick)
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

// childArgs are the flags that give a detached daemon these options. The
// endpoint is not among them: it goes through the environment, since a
// command line is there for anyone to read in ps, and an endpoint URL may
// hold credentials.
func (o runOptions) childArgs() []string {
	args := []string{"run", "--batch", strconv.Itoa(o.batch), "--tick", o.tick.String(),
		"--log-level", strings.ToLower(o.logLevel.String())}
	if o.allowInsecure {
		args = append(args, "--allow-insecure")
	}
	return args
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
	if err := takeLock(ctx, h, lock); err != nil {
		return err
	}
	defer lock.Unlock()

	// Listen for stop requests before the PID file names us: 'stop' acts on
	// the PID file, and a request sent before we listen would be lost (the
	// Windows stop event would not exist yet) or kill us without cleanup
	// (SIGTERM's default action on Unix). The deferred stop runs after the
	// PID file is removed, so we listen for as long as it names us.
	ctx, stop, err := stopContext(ctx, h)
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
		// Tell 'run --detach' we are ready, then stop writing to its pipe:
		// it exits now, and a write to a broken pipe would kill us.
		fmt.Fprintf(cfg.stdout, "ready %d\n", info.PID)
		if err := redirectStdio(logFile.f); err != nil {
			log.Warn("redirect output to log", "error", err)
		}
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

// settleTime bounds how long run and stop wait for a lock holder to show
// itself. The lock is held for an instant by commands that only look (status,
// stop's stale check), and a daemon publishes its PID file just after it
// takes the lock and removes it just before it lets go; in those windows the
// lock and the PID file disagree, and deciding at once would be wrong.
const settleTime = 3 * time.Second

// takeLock takes the single-instance lock, or returns the already-running
// error when a daemon holds it. A lock held without a daemon that can be
// verified is tried again for settleTime: it may be a command that only
// looks, or a daemon that has not yet written its PID file.
func takeLock(ctx context.Context, h home, lock *flock.Flock) error {
	deadline := time.Now().Add(settleTime)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		ok, err := tryLock(lock)
		if err != nil {
			return fmt.Errorf("lock %s: %w", lock.Path(), err)
		}
		if ok {
			return nil
		}
		if info, err := lockHolder(h); err == nil {
			return fmt.Errorf("already running (pid %d)", info.PID)
		}
		if time.Now().After(deadline) {
			return errors.New("already running (the lock is held, but its pid file names no running daemon)")
		}
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
	}
}

// lockHolder reads the PID file and checks that it describes the daemon
// that holds the lock, as far as anyone can tell (verifyHolder).
func lockHolder(h home) (pidInfo, error) {
	info, err := readPIDFile(h.path(pidFileName))
	if err != nil {
		return pidInfo{}, err
	}
	if err := verifyHolder(h, info); err != nil {
		return pidInfo{}, err
	}
	return info, nil
}

// unwatchedPoll is the most an idle daemon sleeps when it cannot listen
// for wake-ups (watchCommits failed): it then finds new events by polling.
const unwatchedPoll = time.Second

// vacuumPace is how soon an idle daemon comes back to shrink the outbox
// by another vacuumStep while free pages are left.
const vacuumPace = 75 * time.Millisecond

// drainLoop delivers until ctx is done. When there is nothing to send it
// sleeps until the earliest of: a wake-up from enqueue (watchCommits), the
// next event's available_at, the end of a pause or open breaker, or the
// safety-net tick, which looks at everything (outbox, spill folder, the
// outbox file replaced) in case a wake-up was never sent.
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

	changes, stopWatch, err := watchCommits(h)
	if err == nil {
		defer stopWatch()
	} else {
		tick = min(tick, unwatchedPoll)
		log.Warn("no wake-ups from enqueue; polling", "every", tick, "error", err)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	var lastSpill time.Time
	var backlog spillRound // what replay moved since the spill folder was last cleared
	dbErrors := 0
	vacuumDue := false
	for ctx.Err() == nil {
		// One line per pass, at debug level: what tests count to see that
		// a burst of wake-ups costs a few passes, not one each.
		log.Debug("drain pass")
		if now := time.Now(); now.Sub(lastSpill) >= time.Second || backlog.more {
			lastSpill = now
			if ob.replaced() {
				if err := reopenOutbox(h, ob, d); err != nil {
					log.Error("outbox file replaced; reopen", "error", err)
				} else {
					log.Warn("outbox file replaced; reopened it", "path", ob.path)
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
			vacuumNext = time.After(vacuumPace)
		}
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
				// A new event in the outbox or a spill file: look at both.
				lastSpill = time.Time{}
				break idle
			case <-ticker.C:
				// The safety net: everything is looked at again.
				lastSpill = time.Time{}
				break idle
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

// startDetached starts 'difflore run' as a detached background process and
// waits until it reports ready, or until it exits and says why.
func startDetached(ctx context.Context, cfg config, h home, opts runOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(exe, opts.childArgs()...)
	cmd.Env = append(os.Environ(), detachedEnv+"=1", "DIFFLORE_HOME="+h.dir, "DIFFLORE_CLOUD_URL="+opts.endpoint)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = pw, pw
	if cmd, err = startDetachedProcess(cmd); err != nil {
		pw.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	pw.Close()

	type line struct {
		text string
		err  error
	}
	lines := make(chan line, 1)
	var out bytes.Buffer
	go func() {
		r := bufio.NewReader(pr)
		for {
			s, err := r.ReadString('\n')
			if strings.HasPrefix(s, "ready ") {
				lines <- line{text: s}
				return
			}
			out.WriteString(s)
			if err != nil {
				lines <- line{err: err}
				return
			}
		}
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case l := <-lines:
		if l.err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l.text, "ready ")))
			cmd.Process.Release()
			fmt.Fprintf(cfg.stdout, "started (pid %d)\n", pid)
			return nil
		}
		// The child exited before it was ready; its output says why.
		werr := cmd.Wait()
		cfg.stderr.Write(out.Bytes())
		code := cmd.ProcessState.ExitCode()
		if code <= 0 {
			return fmt.Errorf("daemon exited before it was ready: %v", werr)
		}
		return withCode(code, errSilent)
	case <-timer.C:
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("daemon not ready after %s; killed it (see %s)", readyTimeout, h.path(logFileName))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ensureDaemon starts a daemon in the background when none holds the lock,
// without waiting for it: enqueue calls it on the hook's fast path. When
// several hooks race here, the lock lets one daemon run and the others exit.
func ensureDaemon(cfg config, h home) error {
	held, err := lockHeld(h)
	if err != nil || held {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	logf, err := openRegular(h.path(logFileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, "run")
	cmd.Env = append(os.Environ(), detachedEnv+"=quiet", "DIFFLORE_HOME="+h.dir)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd, err = startDetachedProcess(cmd); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	return cmd.Process.Release()
}

const stopUsage = `
Usage: difflore stop [--grace DUR]

Stops the daemon of this data home: asks it to stop, waits for it to exit,
and kills it after the grace period. It signals a process only when the lock
is held, the PID file was written for this home's lock file and the process
is the one the PID file describes. Prints one of 'stopped (pid N)',
'killed (pid N) after DUR', 'not running' or 'removed stale pid file
(pid N)'.

Example:
  difflore stop --grace 30s
`

func cmdStop(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "stop", stopUsage)
	grace := fl.Duration("grace", 10*time.Second, "how long to wait for a graceful exit before killing (`DUR`)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("stop takes no arguments, got %q", fl.Arg(0))
	}
	if *grace < 0 {
		return usageError("--grace must not be negative")
	}
	h, err := openHome(cfg.home, false)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(cfg.stdout, "not running")
		return nil
	}
	if err != nil {
		return err
	}
	info, p, msg, err := stopTarget(ctx, h)
	if err != nil || p == nil {
		if msg != "" {
			fmt.Fprintln(cfg.stdout, msg)
		}
		return err
	}
	defer p.close()
	// A request can fail because the daemon is already on its way out (its
	// stop event closed by a stop that came first, the process gone) or
	// because it cannot be reached (a Windows service in another session).
	// Either way the wait below tells which: it exits, or after the grace
	// it is killed, as a daemon that ignores the request would be.
	reqErr := p.requestStop(h)
	exited, err := waitExit(ctx, h, p, *grace)
	if err != nil {
		return fmt.Errorf("wait for pid %d: %w", info.PID, err)
	}
	if exited {
		fmt.Fprintf(cfg.stdout, "stopped (pid %d)\n", info.PID)
		return nil
	}
	if reqErr != nil {
		fmt.Fprintf(cfg.stderr, "difflore: warning: could not ask pid %d to stop: %v\n", info.PID, reqErr)
	}
	if err := p.kill(); err != nil {
		return fmt.Errorf("kill pid %d: %w", info.PID, err)
	}
	if exited, err := waitExit(ctx, h, p, 10*time.Second); err != nil || !exited {
		return fmt.Errorf("pid %d did not exit after kill: %v", info.PID, err)
	}
	// A killed daemon leaves its PID file behind; the lock is free now.
	clearIfStale(h)
	fmt.Fprintf(cfg.stdout, "killed (pid %d) after %s\n", info.PID, *grace)
	return nil
}

// stopTarget finds the daemon to stop: a process that holds the lock and
// is the one the PID file describes. When the lock is free it clears a stale
// PID file and returns what to print, with a nil proc. The lock and the PID
// file disagree for a moment while a daemon starts or exits (or while
// another stop holds the lock to look), so a holder that cannot be verified
// is looked for again, for settleTime, before stop gives up; it is never
// signalled.
func stopTarget(ctx context.Context, h home) (pidInfo, *proc, string, error) {
	deadline := time.Now().Add(settleTime)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		msg, done, err := clearIfStale(h)
		if done || err != nil {
			return pidInfo{}, nil, msg, err
		}
		info, p, err := verifiedHolder(h)
		if err == nil {
			return info, p, "", nil
		}
		if time.Now().After(deadline) {
			return pidInfo{}, nil, "", &exitError{code: 1, err: fmt.Errorf("a process holds the lock, but not the daemon the pid file describes (%w); not signalling anyone", err),
				hint: "stop that daemon by hand"}
		}
		if !sleepCtx(ctx, wait) {
			return pidInfo{}, nil, "", ctx.Err()
		}
	}
}

// verifiedHolder opens the process the PID file names and verifies it. The
// handle is opened before the check, so what is checked is what gets
// signalled, even if the PID is reused in between.
func verifiedHolder(h home) (pidInfo, *proc, error) {
	info, err := readPIDFile(h.path(pidFileName))
	if err != nil {
		return pidInfo{}, nil, fmt.Errorf("pid file: %w", err)
	}
	p, err := openProc(info.PID)
	if err != nil {
		return pidInfo{}, nil, err
	}
	if err := verifyHolder(h, info); err != nil {
		p.close()
		return pidInfo{}, nil, err
	}
	return info, p, nil
}

// clearIfStale takes the lock if it is free, and while holding it (so no
// daemon can start and write a new PID file in between) removes a PID file
// left by a daemon that died. done reports that the lock was free: no daemon
// runs, and msg says what was found.
func clearIfStale(h home) (msg string, done bool, err error) {
	lock := newLock(h)
	ok, err := tryLock(lock)
	if err != nil {
		return "", false, fmt.Errorf("probe lock: %w", err)
	}
	if !ok {
		return "", false, nil
	}
	defer lock.Unlock()
	pidPath := h.path(pidFileName)
	fi, err := os.Lstat(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "not running", true, nil
	}
	if err == nil && !fi.Mode().IsRegular() {
		// Not something a daemon left: difflore never makes one, so it
		// does not remove one either.
		return "", true, &exitError{code: 1, err: fmt.Errorf("pid file %w", notRegular(pidPath, fi.Mode())),
			hint: "no daemon runs; remove it by hand"}
	}
	who := "unreadable"
	if info, err := parsePIDFileAt(pidPath); err == nil {
		who = "pid " + strconv.Itoa(info.PID)
	}
	if err := os.Remove(pidPath); err != nil {
		return "", true, fmt.Errorf("remove stale pid file: %w", err)
	}
	return fmt.Sprintf("removed stale pid file (%s)", who), true, nil
}

// parsePIDFileAt reads a PID file for a message only: unlike readPIDFile it
// does not mind whose it is, since nothing is signalled on its strength.
func parsePIDFileAt(path string) (pidInfo, error) {
	data, err := readShared(path)
	if err != nil {
		return pidInfo{}, err
	}
	return parsePIDFile(data)
}

// waitExit waits up to timeout for the process to exit: through the OS's
// exit notification where there is one, else by waiting for the lock, which
// the daemon releases last.
func waitExit(ctx context.Context, h home, p *proc, timeout time.Duration) (bool, error) {
	exited, err := p.wait(timeout)
	if !errors.Is(err, errNoExitWatch) {
		return exited, err
	}
	return waitUnlocked(ctx, h, timeout)
}

// waitUnlocked blocks on the lock until it is free or timeout passes. A
// blocking flock cannot be cancelled; when the timeout wins, the goroutine
// ends with the process.
func waitUnlocked(ctx context.Context, h home, timeout time.Duration) (bool, error) {
	done := make(chan error, 1)
	go func() {
		l := newLock(h)
		err := l.Lock()
		if err == nil {
			l.Unlock()
		}
		done <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil, err
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

const statusUsage = `
Usage: difflore status [--json]

Shows whether the daemon of this data home runs, the outbox counts, the
endpoint and the last delivery. Exit code: 0 running, 1 stale PID file,
3 not running, 4 unknown (the lock is held but the PID file cannot be used,
or the data home cannot be read).

Example:
  difflore status --json | jq .outbox.pending
`

// statusReport is what 'status --json' prints.
type statusReport struct {
	Daemon struct {
		State         string `json:"state"`
		PID           int    `json:"pid,omitempty"`
		StartedAt     string `json:"started_at,omitempty"`
		UptimeSeconds int64  `json:"uptime_seconds,omitempty"`
		Version       string `json:"version,omitempty"`
		Reason        string `json:"reason,omitempty"`
	} `json:"daemon"`
	Outbox struct {
		counts
		OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
		Spilled                 int     `json:"spilled"` // files in spill/ waiting for replay
		Error                   string  `json:"error,omitempty"`
	} `json:"outbox"`
	Endpoint string `json:"endpoint"`
	Delivery struct {
		LastDeliveryAt    string `json:"last_delivery_at,omitempty"`
		LastDeliveryCount int    `json:"last_delivery_count,omitempty"`
		LastAttemptAt     string `json:"last_attempt_at,omitempty"`
		LastError         string `json:"last_error,omitempty"`
		Breaker           string `json:"breaker,omitempty"`
		PausedReason      string `json:"paused_reason,omitempty"`
		PausedSince       string `json:"paused_since,omitempty"`
	} `json:"delivery"`
}

// daemonState is what the lock and the PID file say together.
type daemonState struct {
	state  string // running, stale, not_running or unknown
	info   pidInfo
	reason string
}

// inspect decides whether a daemon runs: the lock says whether one does, the
// PID file says which. It never signals anything. When the lock cannot be
// probed (a read-only home, say), the state is unknown: that no daemon runs
// is as unproven as that one does.
func inspect(h home) daemonState {
	held, err := lockHeld(h)
	if err != nil {
		return daemonState{state: "unknown", reason: "cannot tell whether a daemon holds the lock: " + err.Error()}
	}
	info, perr := readPIDFile(h.path(pidFileName))
	if !held {
		if errors.Is(perr, fs.ErrNotExist) {
			return daemonState{state: "not_running"}
		}
		return daemonState{state: "stale", info: info}
	}
	if perr != nil {
		return daemonState{state: "unknown", reason: "the lock is held, but the pid file cannot be used: " + perr.Error()}
	}
	if err := verifyHolder(h, info); err != nil {
		return daemonState{state: "unknown", info: info, reason: "the lock is held, but not by the daemon the pid file describes: " + err.Error()}
	}
	return daemonState{state: "running", info: info}
}

func cmdStatus(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "status", statusUsage)
	asJSON := fl.Bool("json", false, "print one JSON object")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("status takes no arguments, got %q", fl.Arg(0))
	}
	var rep statusReport
	rep.Daemon.State = "not_running"
	rep.Endpoint = redactURL(cfg.endpoint)
	if cfg.endpoint == "" {
		rep.Endpoint = "(none)"
	}
	h, err := openHome(cfg.home, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A home that cannot be used says nothing about a daemon: exit 4,
		// LSB's "unknown", not 1, which claims a stale PID file.
		return withCode(4, err)
	}
	if err == nil {
		st := inspect(h)
		rep.Daemon.State, rep.Daemon.PID, rep.Daemon.Reason = st.state, st.info.PID, st.reason
		if st.state == "running" {
			rep.Daemon.StartedAt = st.info.StartedAt.UTC().Format(time.RFC3339)
			rep.Daemon.UptimeSeconds = int64(time.Since(st.info.StartedAt).Seconds())
			rep.Daemon.Version = st.info.Version
		}
		// An outbox that cannot be read is reported, not fatal: whether
		// the daemon runs is what status is for.
		if err := fillOutboxStatus(h, &rep); err != nil {
			rep.Outbox.Error = err.Error()
		}
		// Counted apart from the outbox: spilled events are those the
		// outbox could not take.
		if rep.Outbox.Spilled, err = countSpilled(h); err != nil && rep.Outbox.Error == "" {
			rep.Outbox.Error = fmt.Sprintf("spill folder: %v", err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(cfg.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printStatus(cfg.stdout, &rep, useColor(cfg, cfg.stdout))
	}
	switch rep.Daemon.State {
	case "running":
		return nil
	case "stale":
		return withCode(1, errSilent)
	case "unknown":
		return withCode(4, errSilent)
	}
	return withCode(3, errSilent)
}

// fillOutboxStatus adds the counts and the delivery state, when the outbox
// exists; status never creates one.
func fillOutboxStatus(h home, rep *statusReport) error {
	if _, err := os.Stat(h.path(dbFileName)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ob, err := openOutbox(h, 2*time.Second, time.Now)
	if err != nil {
		return err
	}
	defer ob.Close()
	c, err := ob.counts()
	if err != nil {
		return err
	}
	rep.Outbox.counts = c
	if c.Pending > 0 {
		rep.Outbox.OldestPendingAgeSeconds = time.Since(c.OldestPending).Round(time.Millisecond).Seconds()
	}
	m, err := ob.meta()
	if err != nil {
		return fmt.Errorf("read delivery state: %w", err)
	}
	if rep.Daemon.State == "running" && m["endpoint"] != "" {
		rep.Endpoint = m["endpoint"]
	}
	dl := &rep.Delivery
	dl.LastDeliveryAt, dl.LastAttemptAt, dl.LastError = m["last_delivery_at"], m["last_attempt_at"], m["last_error"]
	dl.LastDeliveryCount, _ = strconv.Atoi(m["last_delivery_count"])
	if rep.Daemon.State == "running" {
		dl.Breaker, dl.PausedReason, dl.PausedSince = m["breaker"], m["paused_reason"], m["paused_since"]
	}
	return nil
}

// ANSI colours for the state line of status, on a terminal only.
const (
	green  = "\033[32m"
	yellow = "\033[33m"
	red    = "\033[31m"
	reset  = "\033[0m"
)

func printStatus(w io.Writer, rep *statusReport, color bool) {
	paint := func(c, s string) string {
		if !color {
			return s
		}
		return c + s + reset
	}
	d := rep.Daemon
	switch d.State {
	case "running":
		up := (time.Duration(d.UptimeSeconds) * time.Second).String()
		fmt.Fprintf(w, "%s (pid %d, up %s, version %s)\n", paint(green, "running"), d.PID, up, d.Version)
	case "stale":
		if d.PID == 0 {
			// The PID file could not be used (a symlink, garbage): there is
			// no PID to show, and 0 would read as one.
			fmt.Fprintf(w, "%s (unreadable); not running\n", paint(yellow, "stale pid file"))
		} else {
			fmt.Fprintf(w, "%s (pid %d); not running\n", paint(yellow, "stale pid file"), d.PID)
		}
	case "unknown":
		fmt.Fprintf(w, "%s: %s\n", paint(red, "unknown"), d.Reason)
	default:
		fmt.Fprintln(w, paint(yellow, "not running"))
	}
	o := rep.Outbox
	if o.Error != "" {
		fmt.Fprintf(w, "outbox:   cannot be read: %s", firstLine(o.Error))
	} else {
		fmt.Fprintf(w, "outbox:   %d pending, %d inflight, %d dead", o.Pending, o.Inflight, o.Dead)
	}
	if o.Spilled > 0 {
		fmt.Fprintf(w, ", %d spilled", o.Spilled)
	}
	if o.Pending > 0 {
		fmt.Fprintf(w, "; oldest pending %s ago", (time.Duration(o.OldestPendingAgeSeconds * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "endpoint: %s\n", rep.Endpoint)
	dl := rep.Delivery
	switch {
	case dl.LastAttemptAt == "":
		fmt.Fprintln(w, "delivery: nothing sent yet")
	case dl.LastError == "":
		fmt.Fprintf(w, "delivery: last %d events at %s\n", dl.LastDeliveryCount, dl.LastDeliveryAt)
	case dl.LastDeliveryAt == dl.LastAttemptAt:
		// Delivered, with a warning from the endpoint (OTLP partial success).
		fmt.Fprintf(w, "delivery: last %d events at %s, %s: %s\n", dl.LastDeliveryCount, dl.LastDeliveryAt, paint(yellow, "with a warning"), firstLine(dl.LastError))
	default:
		fmt.Fprintf(w, "delivery: last attempt at %s %s: %s\n", dl.LastAttemptAt, paint(red, "failed"), firstLine(dl.LastError))
		if dl.LastDeliveryAt != "" {
			fmt.Fprintf(w, "          last success: %d events at %s\n", dl.LastDeliveryCount, dl.LastDeliveryAt)
		}
	}
	if dl.PausedReason != "" {
		fmt.Fprintf(w, "paused:   since %s: %s\n", dl.PausedSince, firstLine(dl.PausedReason))
	}
	if strings.HasPrefix(dl.Breaker, "open") {
		fmt.Fprintf(w, "breaker:  %s\n", dl.Breaker)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
