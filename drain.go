package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

const drainUsage = `
Usage: difflore drain [--endpoint URL | --sink NAME] [--batch N] [--allow-insecure] [--json]

Delivers everything deliverable now, in the foreground, and exits with a
summary: for a last flush before a laptop sleeps, or in CI. It refuses while
a daemon runs for this data home (the daemon already delivers). Events that
wait for a retry are sent now, whatever their backoff; those that fail again
stay queued with a new retry time; dead letters stay dead. What no flag sets
comes from the environment, then from config.toml ('difflore config -h').
With several sinks (config.toml's [[sink]] tables) it drains each in turn,
printing a summary per sink, or the sink NAME alone with --sink;
--endpoint drains to that endpoint in place of the first sink, alone.

Exits 0 only when nothing deliverable is left: 1 when events are still
pending at the end (the endpoint refused the token, answered an error or
could not be reached) or when this drain dead-lettered any (the endpoint
rejected them), with the summary printed either way.

Examples:
  difflore drain --endpoint https://ingest.example.com/v1/events
  difflore drain --sink archive
`

// drainSummary is what 'drain --json' prints.
type drainSummary struct {
	Delivered int64   `json:"delivered"`
	Seconds   float64 `json:"seconds"`
	Pending   int64   `json:"pending"`
	Dead      int64   `json:"dead"`
	LastError string  `json:"last_error,omitempty"`
	Sink      string  `json:"sink,omitempty"` // with several sinks: whose summary this is
}

func cmdDrain(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "drain", drainUsage)
	endpoint := fl.String("endpoint", "", "ingest `URL`; default $DIFFLORE_CLOUD_URL, then endpoint in config.toml")
	batch := fl.Int("batch", defaultBatch, "most events in one request, `N` from 1 to 10000; when not given, batch in config.toml")
	allowInsecure := fl.Bool("allow-insecure", false, "allow plain http to a host that is not loopback")
	asJSON := fl.Bool("json", false, "print the summary as one JSON object (one per line and sink with several)")
	sinkName := fl.String("sink", "", "drain the sink `NAME` alone (config.toml's [[sink]] name, or default)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("drain takes no arguments, got %q", fl.Arg(0))
	}
	if *batch < 1 || *batch > 10000 {
		return usageError("--batch %d: want 1 to 10000", *batch)
	}
	st, err := cfg.settings()
	if err != nil {
		return err
	}
	st.withEndpointFlag(*endpoint, flagGiven(fl, "endpoint"))
	st.printWarnings(cfg.stderr)
	if !flagGiven(fl, "batch") {
		*batch = st.batch
	}
	if !flagGiven(fl, "allow-insecure") {
		*allowInsecure = st.allowInsecure
	}
	specs, err := drainSpecs(st, flagGiven(fl, "endpoint"), *sinkName, *batch, flagGiven(fl, "batch"))
	if err != nil {
		return err
	}
	h, err := openHome(cfg.home, true)
	if err != nil {
		return err
	}
	// Holding the lock keeps a daemon from starting and draining the same
	// events at the same time.
	lock := newLock(h)
	if err := takeLock(ctx, h, lock, cfg.waits.settle, cfg.pauseAt); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("a daemon is delivering for this data home: %v", err),
			hint: "it delivers already; 'difflore status' shows its progress"}
	}
	defer lock.Unlock()
	ob, err := openOutbox(h, 5*time.Second, time.Now)
	if err != nil {
		return err
	}
	defer ob.Close()
	if err := ob.resetInflight(); err != nil {
		return err
	}
	all := st.sinkSpecs()
	if !flagGiven(fl, "endpoint") && len(all) > 0 {
		// The sinks config.toml names, as a daemon starting now would.
		if _, err := ob.syncSinks(sinkNames(all[1:])); err != nil {
			return err
		}
	}
	ctx, stop, err := stopContext(ctx)
	if err != nil {
		return err
	}
	defer stop()
	if err := drainPrepare(ctx, h, ob); err != nil {
		return err
	}
	var verdict error
	for _, spec := range specs {
		if err := drainSink(ctx, cfg, ob, st, spec, *allowInsecure, len(all) > 1 && !flagGiven(fl, "endpoint"), *asJSON); err != nil {
			if exitCode(err) != 1 || ctx.Err() != nil {
				return err
			}
			verdict = err
		}
	}
	return verdict
}

// drainSpecs are the sinks a drain delivers to: the endpoint of --endpoint
// alone, the sink --sink names, or every sink config.toml names.
func drainSpecs(st settings, endpointGiven bool, name string, batch int, batchGiven bool) ([]sinkSpec, error) {
	specs := st.sinkSpecs()
	if endpointGiven {
		if name != "" {
			return nil, usageError("drain takes --endpoint or --sink, not both")
		}
		specs = specs[:min(1, len(specs))]
	}
	if name != "" {
		i := slices.IndexFunc(specs, func(s sinkSpec) bool { return s.name == name })
		if i < 0 {
			return nil, &exitError{code: 2, err: fmt.Errorf("no sink %q", name),
				hint: "the sinks are the top-level endpoint (\"default\") and the [[sink]] tables of config.toml"}
		}
		specs = specs[i : i+1]
	}
	if len(specs) == 0 {
		return nil, &exitError{code: 2, err: fmt.Errorf("no endpoint to drain to"),
			hint: "run 'difflore config set endpoint URL', or set DIFFLORE_CLOUD_URL or pass --endpoint"}
	}
	for i := range specs {
		if batchGiven || specs[i].name == defaultSinkName {
			specs[i].batch = batch
		}
	}
	return specs, nil
}

// drainSink drains one sink: the first through the events rows, any other
// through its own (sinkQueue).
func drainSink(ctx context.Context, cfg config, ob *outbox, st settings, spec sinkSpec, allowInsecure, named, asJSON bool) error {
	s, err := newSink(spec, buildVersion(), allowInsecure)
	if err != nil {
		return err
	}
	var q queue = ob
	view := drainView{count: ob.counts, lastError: func(m map[string]string) string { return m["last_error"] }}
	if others, _ := ob.secondaryNames(); slices.Contains(others, spec.name) {
		sq := &sinkQueue{ob: ob, name: spec.name}
		if err := sq.resetInflight(); err != nil {
			return err
		}
		if _, err := ob.sinkWake(spec.name); err != nil {
			return err
		}
		q = sq
		view = drainView{count: func() (counts, error) { return ob.sinkCounts(spec.name) },
			lastError: func(m map[string]string) string { return m[sinkMetaKey(spec.name, "last_error")] }}
	}
	if named {
		view.sink = spec.name
	}
	d := newDrainer(q, s, spec.batch, slog.New(slog.DiscardHandler), time.Now)
	ropts := st.redact
	if spec.redact != nil {
		ropts.off = !*spec.redact
	}
	if err := d.setRedaction(ropts); err != nil { // redaction
		return err
	}
	return drainAll(ctx, cfg, ob, d, view, asJSON)
}

// drainView is how drainAll reads one sink's counts and last error.
type drainView struct {
	sink      string // named in the summary when there are several
	count     func() (counts, error)
	lastError func(meta map[string]string) string
}

// drainAll delivers until nothing more goes, with progress on a terminal,
// then prints the summary and returns drain's verdict.
func drainAll(ctx context.Context, cfg config, ob *outbox, d *drainer, view drainView, asJSON bool) error {
	before, err := view.count()
	if err != nil {
		return err
	}
	p := newProgress(cfg.stderr, isTerminal(cfg.stderr) && !asJSON, before.Pending)
	start := time.Now()
	for ctx.Err() == nil {
		sent, err := d.run(ctx, ctx)
		if err != nil {
			return err
		}
		if !sent {
			break
		}
		p.update(d.delivered)
	}
	after, err := view.count()
	if err != nil {
		return err
	}
	m, _ := ob.meta()
	sum := drainSummary{
		Delivered: d.delivered,
		Seconds:   time.Since(start).Seconds(),
		Pending:   after.Pending,
		Dead:      after.Dead,
		Sink:      view.sink,
	}
	buried := after.Dead - before.Dead
	if after.Pending > 0 || buried > 0 {
		sum.LastError = view.lastError(m)
	}
	p.finish()
	if asJSON {
		if err := writeJSON(cfg.stdout, sum, true); err != nil {
			return err
		}
	} else {
		sum.print(cfg.stdout)
	}
	if ctx.Err() != nil {
		return withCode(1, fmt.Errorf("interrupted"))
	}
	return drainVerdict(after.Pending, buried)
}

// drainVerdict is drain's exit: success only when everything deliverable
// went. Events still pending failed to go; events this drain dead-lettered
// failed too, for good, though they are no longer deliverable. Dead letters
// from before the drain are not its failure.
func drainVerdict(pending, buried int64) error {
	switch {
	case pending > 0 && buried > 0:
		return &exitError{code: 1, err: fmt.Errorf("%s not delivered, %s dead-lettered", plural(pending, "event"), plural(buried, "event")),
			hint: "'difflore outbox list' shows why"}
	case pending > 0:
		return &exitError{code: 1, err: fmt.Errorf("%s not delivered", plural(pending, "event")),
			hint: "the last error is above; run drain again once the endpoint accepts events"}
	case buried > 0:
		return &exitError{code: 1, err: fmt.Errorf("%s dead-lettered", plural(buried, "event")),
			hint: "'difflore outbox list' shows why"}
	}
	return nil
}

// drainPrepare moves every spilled event into the outbox and makes the
// events that wait for a retry ready now.
func drainPrepare(ctx context.Context, h home, ob *outbox) error {
	for more := true; more && ctx.Err() == nil; {
		r, err := replaySpill(ctx, h, ob)
		if err != nil {
			return err
		}
		more = r.more
	}
	// "Now" means now: events that wait for a retry go too. Those that
	// fail again get a fresh backoff, which the drain loop honours, so a
	// dead endpoint costs each event one attempt, not all of them.
	if _, err := ob.wakeWaiting(true, nil); err != nil {
		return fmt.Errorf("retry waiting events: %w", err)
	}
	return nil
}

// print writes the summary for a person.
func (sum drainSummary) print(w io.Writer) {
	if sum.Sink != "" {
		fmt.Fprintf(w, "sink %s: ", printable(sum.Sink))
	}
	fmt.Fprintf(w, "delivered %s in %s", plural(sum.Delivered, "event"), time.Duration(sum.Seconds*float64(time.Second)).Round(time.Millisecond))
	if sum.Seconds > 0 && sum.Delivered > 0 {
		fmt.Fprintf(w, " (%.0f/s)", float64(sum.Delivered)/sum.Seconds)
	}
	fmt.Fprintf(w, "; %d pending, %d dead\n", sum.Pending, sum.Dead)
	if sum.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", firstLine(sum.LastError))
	}
}

// progress shows how far a drain has come: a bar redrawn in place on a
// terminal, a plain line a second otherwise.
type progress struct {
	w       io.Writer
	tty     bool
	total   int64
	start   time.Time
	last    time.Time
	printed bool
}

func newProgress(w io.Writer, tty bool, total int64) *progress {
	return &progress{w: w, tty: tty, total: total, start: time.Now()}
}

func (p *progress) update(done int64) {
	now := time.Now()
	every := time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every || p.total == 0 {
		return
	}
	p.last = now
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3)
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.total-done)/rate) * time.Second).Round(time.Second).String()
	}
	if !p.tty {
		fmt.Fprintf(p.w, "delivered %d/%d events, %.0f/s, eta %s\n", done, p.total, rate, eta)
		return
	}
	const width = 30
	filled := int(min(width, width*done/max(p.total, 1)))
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d events  %.0f/s  eta %-6s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, p.total, rate, eta)
	p.printed = true
}

func (p *progress) finish() {
	if p.tty && p.printed {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
