package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gofrs/flock"
)

// takeoverTries bounds how often run --takeover stops a daemon and finds
// the lock taken again, by a daemon a hook started in between.
const takeoverTries = 3

// lockOrTakeOver takes the daemon's lock. With takeover, it first stops the
// daemon that holds it, when that is the verified daemon of this home
// (stopTarget, stopProc: the same checks and handle as 'difflore stop'); a
// holder that cannot be verified is never signalled.
func lockOrTakeOver(ctx context.Context, cfg config, h home, lock *flock.Flock, takeover bool, log *slog.Logger) error {
	for try := 1; ; try++ {
		if takeover {
			if err := takeOver(ctx, cfg, h, log); err != nil {
				return err
			}
		}
		err := takeLock(ctx, h, lock, cfg.waits.settle, cfg.pauseAt)
		if err == nil || !takeover || try == takeoverTries {
			return err
		}
	}
}

// takeOver stops the verified daemon of h, if one runs, and waits for it to
// exit; it kills it after defaultStopGrace, as 'difflore stop' does.
func takeOver(ctx context.Context, cfg config, h home, log *slog.Logger) error {
	info, p, msg, err := stopTarget(ctx, h, cfg.waits.settle, cfg.pauseAt)
	if err != nil || p == nil {
		if msg != "" {
			log.Info("taking over: " + msg)
		}
		return err
	}
	defer p.close()
	log.Info("taking over: asking the running daemon to stop", "pid", info.PID)
	killed, reqErr, err := stopProc(ctx, h, info, p, defaultStopGrace)
	switch {
	case err != nil:
		return fmt.Errorf("take over: %w", err)
	case killed:
		log.Warn("taking over: killed the running daemon after the grace", "pid", info.PID, "grace", defaultStopGrace, "request_error", reqErr)
	default:
		log.Info("taking over: the running daemon stopped", "pid", info.PID)
	}
	return nil
}
