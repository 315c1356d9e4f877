package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

const statusUsage = `
Usage: difflore status [--json | --metrics]

Shows whether the daemon of this data home runs, the outbox counts, the
endpoint and the last delivery, and each sink beyond the first on a line
of its own. Exit code: 0 running, 1 stale PID file, 3 not running, 4
unknown (the lock is held but the PID file cannot be used, or the data
home cannot be read). --metrics prints each sink's figures (pending,
oldest pending age, dead letters, and the delivered, failed, dead-lettered
and evicted totals) as OpenMetrics text ending in '# EOF', and exits 0
whatever the daemon's state (difflore_daemon_up says it).

Examples:
  difflore status --json | jq .outbox.pending
  difflore status --metrics > /var/lib/node_exporter/difflore.prom.$$ && mv /var/lib/node_exporter/difflore.prom.$$ /var/lib/node_exporter/difflore.prom
`

// statusReport is what 'status --json' prints.
type statusReport struct {
	Daemon         daemonStatus      `json:"daemon"`
	Outbox         outboxStatus      `json:"outbox"`
	Endpoint       *string           `json:"endpoint"`                  // nil when there is none: null in JSON
	EndpointSource string            `json:"endpoint_source,omitempty"` // flag, env, config or none; empty from a daemon that did not record it
	Delivery       deliveryStatus    `json:"delivery"`
	Redacted       map[string]int64  `json:"redacted,omitempty"` // secrets replaced in delivered events, per rule
	meta           map[string]string // the outbox's meta table, for --metrics

	// Sinks are the sinks beyond the first, each with its own progress
	// (sinkstatus.go); the first is Endpoint, Outbox and Delivery.
	Sinks []sinkStatus `json:"sinks,omitempty"`
	// StartFailure is why the last daemon a hook started could not start,
	// until a daemon gets ready.
	StartFailure *startFailure `json:"start_failure,omitempty"`
	// ConfigError is why config.toml cannot be used, when it cannot.
	ConfigError string `json:"config_error,omitempty"`
}

// daemonStatus is status's "daemon" object.
type daemonStatus struct {
	State         string `json:"state"`
	PID           int    `json:"pid,omitempty"`
	StartedAt     string `json:"started_at,omitempty"`
	UptimeSeconds int64  `json:"uptime_seconds,omitempty"`
	Version       string `json:"version,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// WakePipe says what is wrong with the wake pipe of a running
	// daemon: enqueue cannot wake it then (wakePipeProblem).
	WakePipe string `json:"wake_pipe,omitempty"`
}

// outboxStatus is status's "outbox" object.
type outboxStatus struct {
	counts
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	Spilled                 int     `json:"spilled"` // files in spill/ waiting for replay
	// SpillUnreadable counts those of them the daemon could not read
	// at its last look (kept, and tried again), and SpillError says why.
	SpillUnreadable int    `json:"spill_unreadable,omitempty"`
	SpillError      string `json:"spill_error,omitempty"`
	Error           string `json:"error,omitempty"`
	storeStatus
	// SummedOverSinks is the number of sinks the counts above are summed
	// over, when there are several; FirstSink is then the first sink's
	// own figures (statussinks.go).
	SummedOverSinks int         `json:"summed_over_sinks,omitempty"`
	FirstSink       *sinkStatus `json:"first_sink,omitempty"`
}

// deliveryStatus is status's "delivery" object.
type deliveryStatus struct {
	LastDeliveryAt    string `json:"last_delivery_at,omitempty"`
	LastDeliveryCount int    `json:"last_delivery_count,omitempty"`
	LastAttemptAt     string `json:"last_attempt_at,omitempty"`
	LastError         string `json:"last_error,omitempty"`
	Breaker           string `json:"breaker,omitempty"`
	PausedReason      string `json:"paused_reason,omitempty"`
	PausedSince       string `json:"paused_since,omitempty"`
}

// storeStatus is the outbox's size against its limits, and what evictions
// removed so far.
type storeStatus struct {
	SizeBytes     int64   `json:"size_bytes"` // pages in use, as the limits measure it
	MaxSize       int64   `json:"max_size"`
	MaxSizeSource string  `json:"max_size_source"` // flag, config or default
	MaxAgeSeconds float64 `json:"max_age_seconds,omitempty"`
	MaxAgeSource  string  `json:"max_age_source"`
	Evicted       int64   `json:"evicted"` // events, since the outbox was made
	EvictedBytes  int64   `json:"evicted_bytes"`
	Gaps          int64   `json:"gaps"`
	Salvages      int64   `json:"salvages"`     // corrupt outboxes moved aside and salvaged
	SalvageLost   int64   `json:"salvage_lost"` // events they could not give back
	// SalvageLostAtLeast: SalvageLost is only a lower bound (a salvage
	// that could read nothing, or could not count a lost range).
	SalvageLostAtLeast bool   `json:"salvage_lost_at_least,omitempty"`
	LastAside          string `json:"last_aside,omitempty"`
	// SalvageUnderWay names the corrupt file whose salvage a stopped or
	// killed daemon left unfinished; the daemon's next start finishes it.
	SalvageUnderWay string `json:"salvage_under_way,omitempty"`
	Warning         string `json:"warning,omitempty"`
}

// sizeWarnPercent is the share of max_size past which status warns.
const sizeWarnPercent = 80

// fillStoreStatus reads the outbox's size, the limits the daemon last
// recorded (the defaults when none did) and the eviction totals.
func fillStoreStatus(ob *outbox, m map[string]string, st *storeStatus) error {
	sz, err := ob.size()
	if err != nil {
		return err
	}
	st.SizeBytes, st.MaxSize = sz.used, defaultMaxSize
	if n, err := strconv.ParseInt(m["max_size"], 10, 64); err == nil && n > 0 {
		st.MaxSize = n
	}
	if d, err := time.ParseDuration(m["max_age"]); err == nil {
		st.MaxAgeSeconds = d.Seconds()
	}
	// Where the daemon that recorded the limits took each from; the
	// defaults' when none did. A daemon of an older difflore recorded
	// none: the source is then unknown (empty).
	st.MaxSizeSource, st.MaxAgeSource = m["max_size_source"], m["max_age_source"]
	if m["max_size"] == "" {
		st.MaxSizeSource, st.MaxAgeSource = fromDefault, fromDefault
	}
	st.Evicted, _ = strconv.ParseInt(m["evicted_events"], 10, 64)
	st.EvictedBytes, _ = strconv.ParseInt(m["evicted_bytes"], 10, 64)
	st.Gaps, _ = strconv.ParseInt(m["gaps"], 10, 64)
	st.Salvages, _ = strconv.ParseInt(m["salvages"], 10, 64)
	st.SalvageLost, _ = strconv.ParseInt(m["salvage_lost"], 10, 64)
	st.SalvageLostAtLeast = m["salvage_lost_at_least"] == "1"
	st.LastAside = m["last_aside"]
	st.SalvageUnderWay = salvageUnderWay(m[salvageStateKey])
	if pct := st.SizeBytes * 100 / st.MaxSize; pct >= sizeWarnPercent {
		st.Warning = fmt.Sprintf("the outbox is at %d %% of max_size (%s): past it, the oldest pending events are evicted", pct, formatSize(st.MaxSize))
	}
	return nil
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
	if !held {
		info, err := readPIDFile(h.path(pidFileName))
		if errors.Is(err, fs.ErrNotExist) {
			return daemonState{state: "not_running"}
		}
		return daemonState{state: "stale", info: info}
	}
	info, _, err := lockHolder(h, false)
	var perr *pidFileError
	if errors.As(err, &perr) {
		return daemonState{state: "unknown", reason: "the lock is held, but the pid file cannot be used: " + perr.err.Error()}
	}
	if err != nil {
		return daemonState{state: "unknown", info: info, reason: "the lock is held, but not by the daemon the pid file describes: " + err.Error()}
	}
	return daemonState{state: "running", info: info}
}

func cmdStatus(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "status", statusUsage)
	asJSON := fl.Bool("json", false, "print one JSON object")
	metrics := fl.Bool("metrics", false, "print each sink's figures as OpenMetrics text (node_exporter's textfile collector reads it); exit 0 whatever the daemon's state")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("status takes no arguments, got %q", fl.Arg(0))
	}
	if *asJSON && *metrics {
		return usageError("status takes --json or --metrics, not both")
	}
	var rep statusReport
	rep.Daemon.State = "not_running"
	// config.toml is read once, when a part of the report needs it.
	var st settings
	var stErr error
	stRead := false
	settingsOnce := func() (settings, error) {
		if !stRead {
			st, stErr = cfg.settings()
			stRead = true
		}
		return st, stErr
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
			rep.Daemon.StartedAt = st.info.StartedAt.UTC().Format(time.RFC3339Nano)
			rep.Daemon.UptimeSeconds = int64(time.Since(st.info.StartedAt).Seconds())
			rep.Daemon.Version = st.info.Version
			rep.Daemon.WakePipe = wakePipeProblem(h)
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
		if rep.StartFailure, err = readStartFailure(h); err != nil {
			rep.StartFailure = &startFailure{Error: fmt.Sprintf("read %s: %v", startFailureFileName, err)}
		}
	}
	if rep.Daemon.State != "running" || rep.Endpoint == nil {
		// No daemon says which endpoint it uses: show the one a daemon
		// started now would use.
		// A config.toml that cannot be used says nothing of the daemon or
		// the outbox: status shows them, and the file's error beside them.
		if st, err := settingsOnce(); err != nil {
			rep.ConfigError = err.Error()
		} else {
			st.printWarnings(cfg.stderr)
			endpoint, source := st.firstEndpoint()
			rep.Endpoint, rep.EndpointSource = endpointOrNil(redactURL(endpoint)), source
		}
	}
	if *metrics {
		if rep.Outbox.Error != "" {
			return fmt.Errorf("read the outbox: %s", rep.Outbox.Error)
		}
		return writeMetrics(cfg.stdout, rep.Daemon.State == "running", metricsOf(&rep, primaryNameIn(settingsOnce()), rep.meta))
	}
	if f := rep.Outbox.FirstSink; f != nil {
		f.Name = primaryNameIn(settingsOnce())
	}
	addConfiguredSinks(&rep, settingsOnce)
	switch {
	case *asJSON:
		writeJSON(cfg.stdout, rep, false)
	default:
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
		rep.Endpoint, rep.EndpointSource = endpointOrNil(m["endpoint"]), m["endpoint_source"]
	}
	dl := &rep.Delivery
	dl.LastDeliveryAt, dl.LastAttemptAt, dl.LastError = m["last_delivery_at"], m["last_attempt_at"], m["last_error"]
	dl.LastDeliveryCount, _ = strconv.Atoi(m["last_delivery_count"])
	rep.Redacted = redactionCounts(m)
	rep.meta = m
	if rep.Sinks, err = ob.sinkStatuses(m, time.Now()); err != nil {
		return err
	}
	if rep.Daemon.State != "running" {
		// What a sink's drainer recorded is its last word; with no daemon
		// nothing delivers, whatever it said.
		for i := range rep.Sinks {
			rep.Sinks[i].State = "stopped"
		}
	}
	sumSinks(rep, m, rep.Daemon.State == "running")
	if err := fillStoreStatus(ob, m, &rep.Outbox.storeStatus); err != nil {
		return err
	}
	if rep.Daemon.State == "running" {
		dl.Breaker, dl.PausedReason, dl.PausedSince = m["breaker"], m["paused_reason"], m["paused_since"]
		rep.Outbox.SpillUnreadable, _ = strconv.Atoi(m[metaSpillUnreadable])
		rep.Outbox.SpillError = m[metaSpillUnreadableErr]
	}
	return nil
}

// The meta keys in which the daemon records the spill files it could not
// read at its last look (daemon.noteUnreadable).
const (
	metaSpillUnreadable    = "spill_unreadable"
	metaSpillUnreadableErr = "spill_unreadable_error"
)

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
	printDaemon(w, rep.Daemon, paint)
	printOutbox(w, rep.Outbox, paint)
	endpoint := "(none)"
	if rep.Endpoint != nil {
		endpoint = printable(*rep.Endpoint)
	}
	if rep.EndpointSource == "" || rep.EndpointSource == fromNone {
		fmt.Fprintf(w, "endpoint: %s\n", endpoint)
	} else {
		fmt.Fprintf(w, "endpoint: %s (from %s)\n", endpoint, rep.EndpointSource)
	}
	printDelivery(w, rep.Delivery, paint)
	if f := rep.Outbox.FirstSink; f != nil {
		printSinks(w, []sinkStatus{*f}, paint)
	}
	printSinks(w, rep.Sinks, paint)
	if len(rep.Redacted) > 0 {
		fmt.Fprintf(w, "redacted: %s\n", formatRedactions(rep.Redacted))
	}
	if rep.ConfigError != "" {
		msg, hint, _ := strings.Cut(rep.ConfigError, "\nhint: ")
		fmt.Fprintf(w, "%s %s\n", paint(red, "config:"), firstLine(msg))
		if hint != "" {
			fmt.Fprintf(w, "          hint: %s\n", firstLine(hint))
		}
	}
	if f := rep.StartFailure; f != nil {
		fmt.Fprintf(w, "%s the daemon a hook started at %s could not start: %s\n", paint(red, "autostart:"), humanTimeString(f.At), firstLine(f.Error))
		if f.Hint != "" {
			fmt.Fprintf(w, "          hint: %s\n", firstLine(f.Hint))
		}
	}
}

// printDaemon writes status's first line: whether a daemon runs.
func printDaemon(w io.Writer, d daemonStatus, paint func(c, s string) string) {
	switch d.State {
	case "running":
		up := (time.Duration(d.UptimeSeconds) * time.Second).String()
		fmt.Fprintf(w, "%s (pid %d, up %s, version %s)\n", paint(green, "running"), d.PID, up, printable(d.Version))
		if d.WakePipe != "" {
			fmt.Fprintf(w, "%s: %s: enqueue cannot wake the daemon, which looks for events every second instead\n", paint(yellow, "wake pipe"), printable(d.WakePipe))
		}
	case "stale":
		if d.PID == 0 {
			// The PID file could not be used (a symlink, garbage): there is
			// no PID to show, and 0 would read as one.
			fmt.Fprintf(w, "%s (unreadable); not running\n", paint(yellow, "stale pid file"))
		} else {
			fmt.Fprintf(w, "%s (pid %d); not running\n", paint(yellow, "stale pid file"), d.PID)
		}
	case "unknown":
		fmt.Fprintf(w, "%s: %s\n", paint(red, "unknown"), printable(d.Reason))
	default:
		fmt.Fprintln(w, paint(yellow, "not running"))
	}
}

// printOutbox writes the outbox's counts, then its size against its limits.
func printOutbox(w io.Writer, o outboxStatus, paint func(c, s string) string) {
	if o.Error != "" {
		fmt.Fprintf(w, "outbox:   cannot be read: %s", firstLine(o.Error))
	} else {
		fmt.Fprintf(w, "outbox:   %d pending, %d inflight, %d dead", o.Pending, o.Inflight, o.Dead)
		if o.SummedOverSinks > 0 {
			fmt.Fprintf(w, ", summed over %d sinks", o.SummedOverSinks)
		}
	}
	if o.Spilled > 0 {
		fmt.Fprintf(w, ", %d spilled", o.Spilled)
	}
	if o.SpillUnreadable > 0 {
		fmt.Fprintf(w, " (%s: %d cannot be read now, kept and tried again: %s)", paint(yellow, "spill"), o.SpillUnreadable, firstLine(o.SpillError))
	}
	if o.Pending > 0 {
		fmt.Fprintf(w, "; oldest pending %s ago", (time.Duration(o.OldestPendingAgeSeconds * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintln(w)
	if o.Error == "" && o.MaxSize > 0 {
		printLimits(w, o.storeStatus, paint)
	}
}

// printDelivery writes the last delivery, and a pause or an open breaker.
func printDelivery(w io.Writer, dl deliveryStatus, paint func(c, s string) string) {
	switch {
	case dl.LastAttemptAt == "":
		fmt.Fprintln(w, "delivery: nothing sent yet")
	case dl.LastError == "":
		fmt.Fprintf(w, "delivery: last %s at %s\n", plural(dl.LastDeliveryCount, "event"), humanTimeString(dl.LastDeliveryAt))
	case dl.LastDeliveryAt == dl.LastAttemptAt:
		// Delivered, with a warning from the endpoint (OTLP partial success).
		fmt.Fprintf(w, "delivery: last %s at %s, %s: %s\n", plural(dl.LastDeliveryCount, "event"), humanTimeString(dl.LastDeliveryAt), paint(yellow, "with a warning"), firstLine(dl.LastError))
	default:
		fmt.Fprintf(w, "delivery: last attempt at %s %s: %s\n", humanTimeString(dl.LastAttemptAt), paint(red, "failed"), firstLine(dl.LastError))
		if dl.LastDeliveryAt != "" {
			fmt.Fprintf(w, "          last success: %s at %s\n", plural(dl.LastDeliveryCount, "event"), humanTimeString(dl.LastDeliveryAt))
		}
	}
	if dl.PausedReason != "" {
		fmt.Fprintf(w, "paused:   since %s: %s\n", humanTimeString(dl.PausedSince), firstLine(dl.PausedReason))
	}
	if strings.HasPrefix(dl.Breaker, "open") {
		state, until, ok := strings.Cut(dl.Breaker, " until ")
		if ok {
			state += " until " + humanTimeString(until)
		}
		fmt.Fprintf(w, "breaker:  %s\n", state)
	}
}

// printLimits writes the outbox's size against max_size, the evictions so
// far, and the warning when there is one.
func printLimits(w io.Writer, st storeStatus, paint func(c, s string) string) {
	from := func(source string) string {
		if source == "" {
			return ""
		}
		return " (" + source + ")"
	}
	fmt.Fprintf(w, "size:     %s of %s%s, max age %s%s", formatSize(st.SizeBytes), formatSize(st.MaxSize), from(st.MaxSizeSource),
		formatAge(time.Duration(st.MaxAgeSeconds*float64(time.Second))), from(st.MaxAgeSource))
	if st.Gaps > 0 {
		gaps := "gaps"
		if st.Gaps == 1 {
			gaps = "gap"
		}
		fmt.Fprintf(w, "; evicted %d events (%s) in %d %s", st.Evicted, formatSize(st.EvictedBytes), st.Gaps, gaps)
	}
	fmt.Fprintln(w)
	if st.Salvages > 0 {
		lost := plural(st.SalvageLost, "event")
		if st.SalvageLostAtLeast {
			lost = "at least " + lost
		}
		fmt.Fprintf(w, "corrupt:  salvaged %s, lost %s; the last corrupt file is kept as %s\n",
			plural(st.Salvages, "time"), lost, st.LastAside)
	}
	if st.SalvageUnderWay != "" {
		fmt.Fprintf(w, "corrupt:  a salvage of %s is under way (a daemon stopped during it finishes it when it starts)\n", st.SalvageUnderWay)
	}
	if st.Warning != "" {
		fmt.Fprintf(w, "%s  %s\n", paint(yellow, "warning:"), st.Warning)
	}
}

// firstLine is the start of an error text for a line of output: its first
// line, at most 200 bytes, escaped (printable), since the text may be an
// endpoint's answer.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return printable(s)
}

// endpointOrNil is the endpoint a report shows: nil, null in JSON, when
// there is none ("" or the "(none)" a daemon without one records).
func endpointOrNil(ep string) *string {
	if ep == "" || ep == "(none)" {
		return nil
	}
	return &ep
}
