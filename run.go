package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"
)

// defaultTick is the safety net's default: enqueue wakes the daemon at
// every commit, so the net only catches what no wake-up announced (an
// older enqueue, a file restored by hand), and an event's max_age has a
// timer of its own. A look, on a process gone cold, wakes it from 4 to
// about 60 times (BENCHMARKS.md): one an hour keeps an idle daemon within
// twice a Go process that only blocks (2 wake-ups a minute) even then,
// where one every 15 minutes did not, and two a minute, at the earlier
// 30 s, never could.
const defaultTick = time.Hour

const runUsage = `
Usage: difflore run [--detach] [--takeover] [--endpoint URL] [--batch N] [--tick DUR]
                    [--max-size SIZE] [--max-age AGE] [--log-level LEVEL] [--allow-insecure]

Runs the delivery daemon of this data home: it drains the outbox in batches
to the endpoint until stopped (SIGTERM or SIGINT, or 'difflore stop'). One
daemon runs per data home; a second exits 1, unless given --takeover: then
it asks the running daemon to stop, as 'difflore stop' does, waits for it
to exit and takes its place (what service definitions use, so that a
service never fights a daemon a hook started). With no endpoint the daemon
runs and keeps events queued. An idle daemon sleeps until enqueue wakes it
(a named pipe on Linux, macOS and FreeBSD, a named event on Windows);
--tick (1 hour by default) is only the safety net behind that: how
long an idle daemon sleeps at most before it looks, woken or not, whether
the outbox, the spill folder or the limits changed with no wake-up, and
makes a drain pass if they did. What no flag sets comes
from the environment, then from config.toml in the data home ('difflore
config -h').

SIGHUP makes a daemon in the background (detached, or a service) read
config.toml again (endpoint, token, batch, redaction; a file that does not
check out is refused with a log line and the settings in use are kept) and
reopen daemon.log; a daemon in the foreground of a terminal stops on it.
Windows has no SIGHUP: restart the service to read config.toml again.
Under systemd (NOTIFY_SOCKET set), the daemon says READY=1 once it holds
the lock and the outbox is open, and STOPPING=1 when it stops.

The outbox is kept under --max-size (1GiB by default), and does not grow into
the last 5 % of the disk; with --max-age, events older than that go too. Over a limit
the oldest pending events are evicted, and each eviction is delivered as a
difflore.gap event that says what went; status shows the totals.

Examples:
  difflore run --endpoint https://ingest.example.com/v1/events
  difflore run --detach --endpoint file:///tmp/events.jsonl
  difflore run --endpoint otlp+http://127.0.0.1:4318   # an OpenTelemetry Collector
  difflore run --max-size 500MB --max-age 30d
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
	allowInsecure  bool // from --allow-insecure when given, else allow_insecure of config.toml
	takeover       bool // stop a running daemon of this home and take its place
	service        bool // started by the Windows Service Control Manager: logs to daemon.log
	logLevel       slog.Level
	limits         limits
	// sinks are every destination: the shorthand's ("default") first
	// when it has an endpoint, then the [[sink]] tables (sinks.go), each
	// with its OTLP options.
	sinks []sinkSpec

	// What the command line said, which a reload of config.toml keeps.
	endpointFlag  string
	endpointGiven bool
	flagLimits    limits // --max-size and --max-age, where given (their From is fromFlag)
	// allowInsecureGiven is set when --allow-insecure was given.
	allowInsecureGiven bool
}

// parseLimitFlags reads --max-size and --max-age into o.flagLimits; a
// limit whose flag was not given is left to config.toml (settle).
func (o *runOptions) parseLimitFlags(fl *flag.FlagSet, size, age string) error {
	if flagGiven(fl, "max-size") {
		n, err := parseMaxSize(size)
		if err != nil {
			return usageError("--max-size %q: %v", size, err)
		}
		o.flagLimits.maxSize, o.flagLimits.sizeFrom = n, fromFlag
	}
	if flagGiven(fl, "max-age") {
		d, err := parseAge(age)
		if err != nil {
			return usageError("--max-age %q: %v", age, err)
		}
		o.flagLimits.maxAge, o.flagLimits.ageFrom = d, fromFlag
	}
	return nil
}

func cmdRun(ctx context.Context, cfg config, args []string) error {
	err := runCommand(ctx, cfg, args)
	if err != nil && cfg.getenv(detachedEnv) == "quiet" {
		// Started by a hook: nobody reads this process's standard error
		// but the log, and the hook has exited 0 already.
		return failedInBackground(cfg, err, time.Now())
	}
	return err
}

// flagText is the value of the flag name as the user wrote it.
func flagText(fl *flag.FlagSet, name string) string {
	if f := fl.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// runCommand is 'difflore run' with its flags, up to the daemon's end.
func runCommand(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "run", runUsage)
	detach := fl.Bool("detach", false, "start the daemon in the background and return once it is ready and has made a first delivery pass (5s at most)")
	var opts runOptions
	endpoint := fl.String("endpoint", "", "ingest `URL` (http, https, otlp+http, otlp+https or file:); default $DIFFLORE_CLOUD_URL, then endpoint in config.toml")
	fl.IntVar(&opts.batch, "batch", defaultBatch, "most events in one request, `N` from 1 to 10000; when not given, batch in config.toml")
	opts.tick = defaultTick
	fl.Var(&durationFlag{d: &opts.tick}, "tick", "the safety-net poll: how often an idle daemon looks for events no wake-up announced (`DUR`, 10ms to 24h); enqueue wakes it at once through a named pipe (Linux, macOS, FreeBSD) or a named event (Windows)")
	fl.BoolVar(&opts.takeover, "takeover", false, "stop the daemon of this data home that runs, if any, and take its place")
	fl.BoolVar(&opts.allowInsecure, "allow-insecure", false, "allow plain http to a host that is not loopback")
	logLevel := fl.String("log-level", "info", "log `level`: debug, info, warn or error")
	maxSize := fl.String("max-size", "1GiB", "the outbox's largest `SIZE` (2MiB, 500MB, bytes; at least 1MiB): beyond it the oldest pending events are evicted, and reported; when not given, max_size in config.toml")
	maxAge := fl.String("max-age", "off", "evict, and report, pending events older than `AGE` (30d, 12h, or off); when not given, max_age in config.toml")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if err := opts.parseLimitFlags(fl, *maxSize, *maxAge); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("run takes no arguments, got %q", fl.Arg(0))
	}
	if opts.batch < 1 || opts.batch > 10000 {
		return usageError("--batch %d: want 1 to 10000", opts.batch)
	}
	opts.endpointFlag, opts.endpointGiven = *endpoint, flagGiven(fl, "endpoint")
	opts.batchGiven = flagGiven(fl, "batch")
	opts.allowInsecureGiven = flagGiven(fl, "allow-insecure")
	if err := opts.settle(cfg); err != nil {
		return err
	}
	if err := opts.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	if opts.tick < 10*time.Millisecond || opts.tick > 24*time.Hour {
		return &exitError{code: 2, err: fmt.Errorf("--tick %s: want 10ms to 24h", flagText(fl, "tick")),
			hint: "the tick is only the safety net behind the wake-ups that enqueue sends: 24h is the longest, and the default is 1h"}
	}
	s, err := opts.primarySink()
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
	if underServiceManager() {
		opts.service = true
		return runAsService(ctx, func(ctx context.Context) error { return runDaemon(ctx, cfg, h, s, opts) })
	}
	return runDaemon(ctx, cfg, h, s, opts)
}

// settle completes the options the flags gave with the settings of the
// environment and config.toml, for what no flag set: at start, and again at
// each reload (SIGHUP).
func (o *runOptions) settle(cfg config) error {
	st, err := cfg.settings()
	if err != nil {
		return err
	}
	endpoint, given := o.endpointFlag, o.endpointGiven
	if !given && cfg.getenv(detachedEnv) != "" && cfg.getenv(detachedEndpointEnv) != "" {
		// The endpoint a 'run --detach' was given, passed on out of argv.
		endpoint, given = cfg.getenv(detachedEndpointEnv), true
	}
	st.withEndpointFlag(endpoint, given)
	if !o.batchGiven {
		o.batch = st.batch
	}
	if !o.allowInsecureGiven {
		o.allowInsecure = st.allowInsecure
	}
	o.endpoint, o.endpointSource, o.token = st.endpoint, st.endpointSource, st.token
	o.redact, o.warnings = st.redact, st.warnings
	o.limits = st.limits
	st.endpoint, st.token = o.endpoint, o.token
	o.sinks = st.sinkSpecs()
	if o.endpoint == "" && len(o.sinks) > 0 {
		// The first sink is config.toml's first [[sink]] table.
		o.endpointSource = fromConfig
	}
	if o.flagLimits.sizeFrom == fromFlag {
		o.limits.maxSize, o.limits.sizeFrom = o.flagLimits.maxSize, fromFlag
	}
	if o.flagLimits.ageFrom == fromFlag {
		o.limits.maxAge, o.limits.ageFrom = o.flagLimits.maxAge, fromFlag
	}
	return nil
}

// primarySink makes the first sink, whose drainer is the daemon loop's,
// and checks every other: the shorthand's endpoint, or else the first
// [[sink]] table's.
func (o *runOptions) primarySink() (sink, error) {
	for _, spec := range o.sinks[min(1, len(o.sinks)):] {
		if _, err := newSink(spec, buildVersion(), o.allowInsecure); err != nil {
			return nil, err
		}
	}
	if len(o.sinks) == 0 {
		return nil, nil
	}
	// settle put the flags' endpoint and token in the shorthand's spec,
	// which is first whenever there is one.
	return newSink(o.sinks[0], buildVersion(), o.allowInsecure)
}
