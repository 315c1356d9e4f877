package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

const doctorUsage = `
Usage: difflore doctor [--check-time DUR]

Checks that difflore can do its work here and prints one line per check,
"ok", "warn" or "FAIL" and what it found: the hooks wired in each agent's
settings and the program they run, the endpoint (an empty batch sent to it
must be accepted, token included; for file:, its folder must be writable),
config.toml and its permissions, the free disk space, the integrity of the
outbox (SQLite's quick_check, cut after --check-time), the PID file against
the lock, and the clock (no queued event dated in the future). Exit 1 when a
check fails. It changes nothing.

Example:
  difflore doctor
`

// minFreeShare is the share of the disk the outbox does not grow into: it stops
// growing when less than this would be left free.
const minFreeShare = 0.05

// clockSkew is how far in the future a queued event may be dated before
// doctor calls the clock insane: more than a hook's own clock jitter.
const clockSkew = time.Minute

// Doctor's check levels.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "FAIL"
)

// checkLine is one line of doctor's report.
type checkLine struct {
	level string
	what  string
}

func cmdDoctor(ctx context.Context, cfg config, args []string) error {
	fl := newFlagSet(cfg, "doctor", doctorUsage)
	checkTime := newDurationFlag(fl, "check-time", 5*time.Second, "how long the outbox's integrity check may take (`DUR`) before it is cut and reported as a warning")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError("doctor takes no arguments, got %q", fl.Arg(0))
	}
	var lines []checkLine
	add := func(level, format string, a ...any) {
		lines = append(lines, checkLine{level, fmt.Sprintf(format, a...)})
	}
	doctorHooks(cfg, add)
	st, cfgErr := cfg.settings()
	doctorConfig(cfg, cfgErr, add)
	if cfgErr == nil {
		doctorEndpoint(ctx, st, add)
	}
	h, homeErr := openHome(cfg.home, false)
	switch {
	case errors.Is(homeErr, fs.ErrNotExist):
		add(checkOK, "data home: %s does not exist yet; the first enqueue makes it", cfg.home)
	case homeErr != nil:
		add(checkFail, "data home: %v", homeErr)
	default:
		doctorDisk(h, add)
		doctorOutbox(ctx, h, *checkTime, add)
		doctorSpill(h, add)
		doctorDaemon(h, add)
	}
	failed := false
	for _, l := range lines {
		// One line a check: an error's hint line joins it.
		fmt.Fprintf(cfg.stdout, "%-4s %s\n", l.level, printable(strings.ReplaceAll(l.what, "\nhint: ", "; hint: ")))
		failed = failed || l.level == checkFail
	}
	if failed {
		return withCode(1, errSilent)
	}
	return nil
}

// doctorHooks checks each agent's settings, as 'hooks status' does, and
// warns when no agent is wired at all: then nothing ever enqueues.
func doctorHooks(cfg config, add func(level, format string, a ...any)) {
	wired := false
	for _, a := range agents {
		line, ok, hint := a.status(cfg, "")
		switch {
		case !ok && hint != "":
			add(checkFail, "hooks %s: %s (%s)", a.name, line, hint)
		case !ok:
			add(checkFail, "hooks %s: %s", a.name, line)
		default:
			add(checkOK, "hooks %s: %s", a.name, line)
		}
		wired = wired || hooksWired(line)
	}
	if !wired {
		add(checkWarn, "hooks: no agent is wired; run 'difflore hooks install AGENT'")
	}
}

// hooksWired reports whether a 'hooks status' line says the hooks are
// wired, wholly or partly.
func hooksWired(line string) bool {
	return len(line) >= 5 && line[:5] == "wired" || len(line) >= 12 && line[:12] == "partly wired"
}

// doctorConfig checks config.toml with the checks every command makes, and
// warns about a file others may read even when it holds no token yet.
func doctorConfig(cfg config, err error, add func(level, format string, a ...any)) {
	if err != nil {
		add(checkFail, "config: %v", err)
		return
	}
	f, ferr := readConfigFile(cfg.configPath())
	switch {
	case ferr != nil:
		add(checkFail, "config: %v", ferr)
	case f.info == nil:
		add(checkOK, "config: %s does not exist; defaults and the environment apply", cfg.configPath())
	case checkSecretMode(f.info) != nil:
		add(checkWarn, "config: %s %v (it holds no token; chmod 600 it before adding one)", cfg.configPath(), checkSecretMode(f.info))
	default:
		add(checkOK, "config: %s", cfg.configPath())
	}
}

// doctorEndpoint checks each sink: it sends an HTTP or OTLP endpoint an
// empty batch, which a receiver answers 2xx when it is reachable and
// accepts the token, and checks that a file: sink's folder is writable.
func doctorEndpoint(ctx context.Context, st settings, add func(level, format string, a ...any)) {
	specs := st.sinkSpecs()
	if st.endpoint == "" {
		add(checkWarn, "endpoint: none; events stay queued ('difflore config set endpoint URL')")
		if len(specs) == 0 {
			return
		}
	}
	for _, spec := range specs {
		label := "endpoint"
		if spec.name != defaultSinkName {
			label = "sink " + spec.name
		}
		doctorSink(ctx, label, spec, st.allowInsecure, add)
	}
}

// doctorSink is doctorEndpoint for one sink; label starts its lines.
func doctorSink(ctx context.Context, label string, spec sinkSpec, allowInsecure bool, add func(level, format string, a ...any)) {
	s, err := newSink(spec, buildVersion(), allowInsecure)
	if err != nil {
		// newSink names a [[sink]] table's sink in its error already.
		if spec.name == defaultSinkName {
			err = fmt.Errorf("%s: %w", label, err)
		}
		add(checkFail, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var p *poster
	var probe string
	switch s := s.(type) {
	case *fileSink:
		if err := writableDir(filepath.Dir(s.path)); err != nil {
			add(checkFail, "%s %s: folder not writable: %v", label, s, err)
			return
		}
		add(checkOK, "%s %s: folder writable", label, s)
		return
	case *httpSink:
		p, probe = &s.poster, `{"events":[]}`
	case *otlpSink:
		// The probe is OTLP/JSON whatever the protocol: every OTLP/HTTP
		// receiver takes it, and it reads as one in a log.
		pp := s.poster
		pp.contentType = ""
		p, probe = &pp, `{"resourceLogs":[]}`
	default:
		add(checkWarn, "%s %s: no probe for it", label, s)
		return
	}
	a, fail := p.post(ctx, []byte(probe), nil, func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err })
	switch {
	case fail != nil:
		add(checkFail, "%s %s: unreachable: %s", label, p, fail.err)
	case a.status < 200 || a.status > 299:
		r := withPauseHint(result{verdict: paused, status: a.status, err: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status))}, p.token != "")
		add(checkFail, "%s %s: an empty batch was answered %s", label, p, r.err)
	default:
		add(checkOK, "%s %s: reachable, an empty batch accepted (%d)", label, p, a.status)
	}
}

// writableDir reports whether a file can be made in dir, by making one
// and removing it.
func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".difflore-doctor-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// doctorDisk checks the free space where the outbox lives: it fails when
// less than minFreeShare of the disk is free, and warns when the outbox
// could not grow to its limit without going below that.
func doctorDisk(h home, add func(level, format string, a ...any)) {
	free, total, err := diskSpace(h.dir)
	if err != nil {
		add(checkWarn, "disk: cannot tell the free space: %v", err)
		return
	}
	var used uint64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(h.path(dbFileName) + suffix); err == nil {
			used += uint64(fi.Size())
		}
	}
	level, text := diskVerdict(free, total, used)
	add(level, "disk: %s", text)
}

// diskVerdict judges the free space: a failure when less than minFreeShare
// of the disk is free, a warning when the outbox could not grow to its
// limit without going below that.
func diskVerdict(free, total, used uint64) (level, text string) {
	reserve := uint64(float64(total) * minFreeShare)
	growth := uint64(0)
	if used < defaultMaxSize {
		growth = defaultMaxSize - used
	}
	switch {
	case free <= reserve:
		return checkFail, fmt.Sprintf("%s free of %s, not over %.0f %%; the outbox cannot grow", sizeText(free), sizeText(total), minFreeShare*100)
	case free-reserve < growth:
		return checkWarn, fmt.Sprintf("%s free of %s; the outbox (%s) cannot grow to its %s limit and keep %.0f %% free", sizeText(free), sizeText(total), sizeText(used), sizeText(defaultMaxSize), minFreeShare*100)
	}
	return checkOK, fmt.Sprintf("%s free of %s; the outbox (%s) can grow to its %s limit", sizeText(free), sizeText(total), sizeText(used), sizeText(defaultMaxSize))
}

// sizeText is a byte count for people, in binary units.
func sizeText(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// futureEventsSQL counts the queued events dated later than :limit.
const futureEventsSQL = `SELECT count(*), max(created_at) FROM events WHERE state = 0 AND created_at > :limit`

// doctorOutbox runs SQLite's quick_check on the outbox, interrupted after
// checkTime, and checks that no queued event is dated in the future (a
// clock that was, or is, wrong). It only reads the outbox, and never
// creates it.
func doctorOutbox(ctx context.Context, h home, checkTime time.Duration, add func(level, format string, a ...any)) {
	path := h.path(dbFileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		add(checkOK, "outbox: none yet")
		add(checkOK, "clock: %s", time.Now().UTC().Format(time.RFC3339))
		return
	}
	// Another outbox's WAL beside outbox.db would be applied to it for good
	// as the connection below closed: the id is checked first, read-only.
	if _, err := checkIdentity(h, 2*time.Second); errors.Is(err, errForeignOutbox) {
		add(checkFail, "outbox: %v; the daemon sets the other outbox's files aside when it starts, and reports what this home lost", err)
		add(checkOK, "clock: %s", time.Now().UTC().Format(time.RFC3339))
		return
	}
	// The gate keeps a salvage from moving the outbox aside under this
	// connection (gate.go); it is let go of after the connection closes.
	gate, err := holdGate(path, 2*time.Second)
	if err != nil {
		add(checkWarn, "outbox: %v; run 'difflore doctor' again", err)
		return
	}
	defer releaseGate(gate)
	// Read-write, but never created: a read-only connection to a WAL
	// database fails where no -shm file exists yet.
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqliteNoFollow)
	if err != nil {
		add(checkFail, "outbox: %v", err)
		return
	}
	defer conn.Close()
	conn.SetBusyTimeout(2 * time.Second)
	qctx, cancel := context.WithTimeout(ctx, checkTime)
	defer cancel()
	conn.SetInterrupt(qctx.Done())
	var problems []string
	err = sqlitex.ExecuteTransient(conn, "PRAGMA quick_check", &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if r := stmt.ColumnText(0); r != "ok" && len(problems) < 3 {
				problems = append(problems, r)
			}
			return nil
		},
	})
	conn.SetInterrupt(nil)
	switch {
	case sqlite.ErrCode(err) == sqlite.ResultInterrupt:
		add(checkWarn, "outbox: quick_check cut after %s; run 'difflore doctor --check-time 1m' to finish it", checkTime)
	case err != nil:
		add(checkFail, "outbox: %v; the daemon salvages it when it starts", err)
		return
	case len(problems) > 0:
		add(checkFail, "outbox: corrupt: %s; the daemon salvages it when it starts", problems)
	default:
		add(checkOK, "outbox: quick_check ok")
	}
	doctorClock(conn, add)
}

// doctorClock fails when a queued event is dated more than clockSkew
// after now: this clock is behind, or was ahead when the event was queued.
func doctorClock(conn *sqlite.Conn, add func(level, format string, a ...any)) {
	now := time.Now()
	var n, latest int64
	err := sqlitex.ExecuteTransient(conn, futureEventsSQL, &sqlitex.ExecOptions{
		Named:      map[string]any{":limit": now.Add(clockSkew).UnixMilli()},
		ResultFunc: func(stmt *sqlite.Stmt) error { n, latest = stmt.ColumnInt64(0), stmt.ColumnInt64(1); return nil },
	})
	switch {
	case err != nil:
		add(checkWarn, "clock: cannot read the queued events' dates: %v", err)
	case n > 0:
		add(checkFail, "clock: %d queued events are dated in the future, up to %s (now %s); check the system clock",
			n, time.UnixMilli(latest).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	default:
		add(checkOK, "clock: %s; no queued event dated in the future", now.UTC().Format(time.RFC3339))
	}
}

// doctorDaemon checks that the PID file and the lock agree, as status
// decides it.
func doctorDaemon(h home, add func(level, format string, a ...any)) {
	st := inspect(h)
	switch st.state {
	case "running":
		add(checkOK, "daemon: running, pid %d; the PID file and the lock agree", st.info.PID)
		if p := wakePipeProblem(h); p != "" {
			add(checkWarn, "wake pipe %s: %s: enqueue cannot wake the daemon, which polls instead", h.path(wakeFileName), p)
		}
	case "not_running":
		add(checkWarn, "daemon: not running; events stay queued until 'difflore run --detach'")
	case "stale":
		add(checkFail, "daemon: stale PID file (pid %d) and no daemon holds the lock; 'difflore run --detach' replaces it", st.info.PID)
	default:
		add(checkFail, "daemon: %s", st.reason)
	}
	switch f, err := readStartFailure(h); {
	case err != nil:
		add(checkFail, "autostart: %s cannot be read: %v", startFailureFileName, err)
	case f != nil:
		hint := ""
		if f.Hint != "" {
			hint = "; hint: " + firstLine(f.Hint)
		}
		add(checkFail, "autostart: the daemon a hook started at %s could not start: %s%s", humanTimeString(f.At), firstLine(f.Error), hint)
	}
}

// doctorSpill reads the spill files that wait for the daemon, as replay
// would, without moving any: one that cannot be read now is a warning
// (replay keeps it and tries again), and so is a wait the daemon should
// have ended, which only a file waiting with a daemon running shows.
func doctorSpill(h home, add func(level, format string, a ...any)) {
	dir := h.path(spillDirName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		add(checkFail, "spill: %v", err)
		return
	}
	waiting, unreadable := 0, 0
	var first error
	for _, e := range entries {
		if !isSpillName(e.Name()) {
			continue
		}
		waiting++
		if _, err := readSpill(filepath.Join(dir, e.Name())); err != nil {
			if unreadable++; first == nil {
				first = err
			}
		}
	}
	switch {
	case unreadable > 0:
		add(checkWarn, "spill: %d of %s in %s cannot be read now (%v); the daemon keeps them and tries again", unreadable, plural(waiting, "file"), dir, first)
	case waiting > 0:
		add(checkOK, "spill: %s wait for the daemon to move them into the outbox", plural(waiting, "file"))
	}
}
