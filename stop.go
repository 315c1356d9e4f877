package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

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
	grace := newDurationFlag(fl, "grace", defaultStopGrace, "how long to wait for a graceful exit before killing (`DUR`)")
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
	info, p, msg, err := stopTarget(ctx, h, cfg.waits.settle, cfg.pauseAt)
	if err != nil || p == nil {
		if msg != "" {
			fmt.Fprintln(cfg.stdout, msg)
		}
		return err
	}
	defer p.close()
	cfg.pauseAt("stop-verified")
	killed, reqErr, err := stopProc(ctx, h, info, p, *grace)
	if err != nil {
		return err
	}
	if !killed {
		fmt.Fprintf(cfg.stdout, "stopped (pid %d)\n", info.PID)
		return nil
	}
	if reqErr != nil {
		fmt.Fprintf(cfg.stderr, "difflore: warning: could not ask pid %d to stop: %v\n", info.PID, reqErr)
	}
	fmt.Fprintf(cfg.stdout, "killed (pid %d) after %s\n", info.PID, *grace)
	return nil
}

// defaultStopGrace is how long stop, and run --takeover, wait for a
// daemon to exit after asking it to stop, before they kill it.
const defaultStopGrace = 10 * time.Second

// stopProc asks the verified daemon p to stop, waits up to grace for it to
// exit, and kills it through the same handle when it does not. It reports
// whether it had to kill, and why the request failed if it did.
func stopProc(ctx context.Context, h home, info pidInfo, p *proc, grace time.Duration) (killed bool, reqErr, err error) {
	// A request can fail because the daemon is already on its way out (its
	// stop event closed by a stop that came first, the process gone) or
	// because it cannot be reached (a Windows service in another session).
	// Either way the wait below tells which: it exits, or after the grace
	// it is killed, as a daemon that ignores the request would be.
	reqErr = p.requestStop()
	exited, err := waitExit(ctx, h, p, grace)
	if err != nil {
		return false, reqErr, fmt.Errorf("wait for pid %d: %w", info.PID, err)
	}
	if exited {
		return false, reqErr, nil
	}
	if err := p.kill(); err != nil {
		return false, reqErr, fmt.Errorf("kill pid %d: %w", info.PID, err)
	}
	exited, err = waitExit(ctx, h, p, 10*time.Second)
	if err != nil {
		return true, reqErr, fmt.Errorf("pid %d did not exit after kill: %w", info.PID, err)
	}
	if !exited {
		return true, reqErr, fmt.Errorf("pid %d did not exit after kill", info.PID)
	}
	// A killed daemon leaves its PID file behind; the lock is free now.
	clearIfStale(h)
	return true, reqErr, nil
}

// stopTarget finds the daemon to stop: a process that holds the lock and
// is the one the PID file describes (lockHolder). When the lock is free it
// clears a stale PID file and returns what to print, with a nil proc. A
// holder that cannot be verified is looked for again, for settle
// (settleLoop), before stop gives up; it is never signalled. pause is called
// with "stop-unverified" each time that happens (config.pauseAt).
func stopTarget(ctx context.Context, h home, settle time.Duration, pause func(string)) (pidInfo, *proc, string, error) {
	var (
		info   pidInfo
		p      *proc
		msg    string
		notYou error
	)
	settled, err := settleLoop(ctx, settle, func() (bool, error) {
		var done bool
		var err error
		if msg, done, err = clearIfStale(h); done || err != nil {
			return true, err
		}
		info, p, notYou = lockHolder(h, true)
		if notYou != nil {
			pause("stop-unverified")
		}
		return notYou == nil, nil
	})
	switch {
	case err != nil:
		return pidInfo{}, nil, msg, err
	case !settled:
		return pidInfo{}, nil, "", &exitError{code: 1, err: fmt.Errorf("a process holds the lock, but not the daemon the pid file describes (%w); not signalling anyone", notYou),
			hint: "stop that daemon by hand"}
	case p == nil:
		return pidInfo{}, nil, msg, nil
	}
	return info, p, "", nil
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
