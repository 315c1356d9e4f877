package main

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// onHangup sets up what SIGHUP does. It reloads config.toml and reopens the
// log of a daemon that runs in the background (detached, or a service): the
// channel it returns is read by the daemon's loop (reload). A daemon in the
// foreground of a terminal stops on it, as it did when the terminal went
// away: the context it returns is cancelled then, and the channel is nil.
func onHangup(ctx context.Context, cfg config, detached bool, log *slog.Logger) (context.Context, <-chan os.Signal, func()) {
	hup, stopHup := hangups()
	ctx, hangup := context.WithCancel(ctx)
	stop := func() { hangup(); stopHup() }
	if hup != nil && !detached && (isTerminal(cfg.stdin) || isTerminal(cfg.stderr)) {
		go func(hup <-chan os.Signal) {
			select {
			case <-hup:
				log.Info("hangup: stopping")
				hangup()
			case <-ctx.Done():
			}
		}(hup)
		hup = nil
	}
	return ctx, hup, stop
}

// reload reopens daemon.log (moved away by logrotate, say) and applies
// config.toml as it is now: the endpoint, the token, the batch size, the
// redaction and the limits, each unless a flag set it. A file that cannot be read or
// checked, or that names an endpoint or rules that do not work, changes
// nothing: the daemon logs why and goes on with the settings it had.
//
// Each reload logs its generation (1 for the first SIGHUP, and so on), so
// that whoever sent the signal can see when it took effect.
func (dm *daemon) reload() {
	dm.reloads++
	if dm.logFile != nil {
		if err := dm.logFile.reopen(); err != nil {
			dm.log.Error("reopen log", "error", err)
		}
	}
	o := dm.opts
	s, r, err := o.reread(dm.cfg)
	if err != nil {
		dm.log.Error("reload config.toml: keeping the settings in use", "error", err, "generation", dm.reloads)
		return
	}
	for _, w := range o.warnings {
		dm.log.Warn(w)
	}
	endpoint := "(none)"
	if s != nil {
		endpoint = s.String()
	}
	if o.endpoint != dm.opts.endpoint || o.token != dm.opts.token || firstSinkChanged(dm.opts.sinks, o.sinks) {
		// A pause or an open breaker was the old endpoint's answer.
		dm.d.sink = s
		dm.d.failures, dm.d.breakerDelay = 0, 0
		dm.d.breakerUntil, dm.d.pausedUntil, dm.d.pausedSince = time.Time{}, time.Time{}, time.Time{}
		if err := dm.ob.setMeta(map[string]string{"endpoint": endpoint, "endpoint_source": o.endpointSource, "paused_reason": "", "paused_since": "", "breaker": "closed"}); err != nil {
			dm.log.Warn("write status", "error", err)
		}
		dm.d.written = nil // the drainer writes its status afresh
	}
	dm.d.batch, dm.d.redact = o.batch, r
	// The next housekeeping enforces the new limits and records them.
	dm.lim.setLimits(o.limits)
	dm.lastSpill = time.Time{}
	dm.opts = o
	if dm.runCtx != nil {
		// Sinks added or removed, or changed: their drainers start
		// afresh from the progress the outbox holds for each.
		dm.stopRunners()
		dm.startRunners(dm.runCtx)
	}
	dm.log.Info("reloaded config.toml", "sinks", sinkNames(o.sinks), "endpoint", endpoint, "endpoint_source", o.endpointSource, "batch", o.batch,
		"max_size", o.limits.maxSize, "max_size_source", o.limits.sizeFrom, "max_age", formatAge(o.limits.maxAge), "max_age_source", o.limits.ageFrom,
		"generation", dm.reloads)
	if s == nil {
		dm.log.Warn("no endpoint: events stay queued")
	}
}

// reread settles the options again from the environment and config.toml
// (settle), and makes the sink and the redactor they describe.
func (o *runOptions) reread(cfg config) (sink, *redactor, error) {
	if err := o.settle(cfg); err != nil {
		return nil, nil, err
	}
	s, err := o.primarySink()
	if err != nil {
		return nil, nil, err
	}
	r, err := newRedactor(o.redact)
	if err != nil {
		return nil, nil, err
	}
	return s, r, nil
}

// firstSinkChanged reports whether the first sink, whose drainer is the
// daemon loop's, is another endpoint or token than it was: when it is a
// [[sink]] table, the top-level endpoint and token do not say.
func firstSinkChanged(before, after []sinkSpec) bool {
	if len(before) == 0 || len(after) == 0 {
		return len(before) != len(after)
	}
	return before[0].endpoint != after[0].endpoint || before[0].token != after[0].token || before[0].otlp != after[0].otlp
}
