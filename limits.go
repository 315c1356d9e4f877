package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The outbox's limits: how large it may grow and how old an event may get
// before the daemon evicts the oldest pending events, and how each eviction
// is reported (a gap). The README's Limits paragraph is the user's view.
//
// The size is what the outbox's pages in use take, (page_count −
// freelist_count) × page_size, read from SQLite's own header: exact, a few
// microseconds, and it counts what the disk really holds (rows, both
// indexes, page slack), which a total of payload bytes would under-count by
// about half for typical events. Free pages are left out because inserts
// reuse them before the file grows, and the daemon gives them back to the
// file system when idle.
//
// Only the daemon evicts (daemon.limitStep): enqueue does no limit work at
// all, so the hook costs the same at the limit as below it. The daemon
// measures the size after each commit that wakes it while idle, and once a
// second while it delivers, so the outbox can pass max_size by what hooks
// commit between two measures (one commit's worth when idle, about a
// second's worth behind a slow endpoint) plus the WAL. While no daemon runs,
// nothing evicts: the first housekeeping of the next daemon, before its
// first delivery, brings the outbox back under the limit.

// Defaults and bounds of the limits.
const (
	defaultMaxSize = 1 << 30
	minMaxSize     = 1 << 20
	// minFreeDisk is the share of the disk (in percent, as df counts it
	// for the daemon's user: diskFigures) the outbox does not grow into,
	// whatever max_size says (limiter.sizeLimit).
	minFreeDisk = 5
	// deadShare is the share of max_size (in percent) that dead letters'
	// payloads may take; beyond it the oldest go.
	deadShare = 10
	// evictSlack is the share of a limit (1/evictSlack) an eviction frees
	// below it, so that an outbox at the limit is evicted in runs, one gap
	// each, rather than one event (and one gap) per enqueue.
	evictSlack = 50
	// sizeSlack is the share of max_size (1/sizeSlack) a size eviction
	// frees below it: half of evictSlack, because an eviction stops at the
	// first measure under its target, which can be a page or two below it
	// (a delete frees a page only once the page is empty). The outbox
	// then holds what fits within 2 % and one event under the limit.
	sizeSlack = 2 * evictSlack
	// evictChunk bounds one eviction run (one transaction): an enqueue
	// waits at most for that many deletes. The daemon runs again at once
	// when a run stopped at it.
	evictChunk = 10000
	// rowOverhead is what a row costs on disk beyond its payload, id and
	// kind (its two index entries, cell headers), used to pick how many
	// rows to remove before measuring again.
	rowOverhead = 64
)

// gapKind is the kind of the event that reports an eviction. Gap events
// are never evicted themselves: each reports what no other record holds,
// they are a few hundred bytes, and evictSlack keeps them rare.
const gapKind = "difflore.gap"

// Reasons a gap gives.
const (
	reasonMaxSize = "max_size"
	reasonMaxAge  = "max_age"
)

// limits are the outbox's bounds, each from the first of the run flag,
// config.toml and the default that sets it, and where it came from, for
// status.
type limits struct {
	maxSize  int64         // bytes of pages in use
	maxAge   time.Duration // 0: no limit
	sizeFrom string        // fromFlag, fromConfig or fromDefault
	ageFrom  string
}

// defaultLimits are the limits when neither a flag nor config.toml sets
// them.
func defaultLimits() limits {
	return limits{maxSize: defaultMaxSize, sizeFrom: fromDefault, ageFrom: fromDefault}
}

// parseMaxSize reads a max_size: a size (parseSize) of at least
// minMaxSize. The error does not repeat the text: the caller names it
// with the flag or key.
func parseMaxSize(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, err
	}
	if n < minMaxSize {
		return 0, errors.New("want at least 1MiB")
	}
	return n, nil
}

// formatAge writes a max_age as it would be given: whole days as 30d,
// other durations as Go writes them, off for none.
func formatAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "off"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// parseSize reads a size: a byte count, or a whole number with a unit, KB,
// MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); the
// unit's case does not matter. Its errors, as parseAge's, do not repeat
// the text.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(num)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("want a byte count or a whole number with a unit, as 2MiB or 500MB")
	}
	return n * mult, nil
}

// parseAge reads an age: a whole number of days (30d), or a Go duration
// (12h, 90m); 0 or off means no limit.
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return 0, nil
	}
	bad := errors.New("want days or a duration, as 30d or 12h, or off")
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

// gap is what one eviction run removed, as the payload of its gap event.
type gap struct {
	Evicted        int64            `json:"evicted"`
	Bytes          int64            `json:"bytes"` // payload bytes
	Kinds          map[string]int64 `json:"kinds"`
	FirstCreatedAt string           `json:"first_created_at"`
	LastCreatedAt  string           `json:"last_created_at"`
	Reason         string           `json:"reason"`
	Exact          bool             `json:"exact"` // an eviction counts what it removed: always exact

	first, last int64 // Unix milliseconds
}

func (g *gap) add(kind string, bytes, createdAt int64) {
	if g.Evicted == 0 || createdAt < g.first {
		g.first = createdAt
	}
	if g.Evicted == 0 || createdAt > g.last {
		g.last = createdAt
	}
	g.Evicted++
	g.Bytes += bytes
	g.Kinds[kind]++
}

// wireTime writes a time as created_at goes on the wire.
func wireTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// evictPlan says what one eviction run removes: the oldest events in
// state, in queue order, until over (measured again after each round of
// deletes) is no longer positive, counting each row's cost; with before
// set, only those created before it.
type evictPlan struct {
	state  int
	reason string
	over   func() (int64, error)
	cost   func(payload, idKind int64) int64
	before int64 // Unix milliseconds; 0: any age

	removed int64 // rows deleted so far (others stay for other sinks)
}

// evictCandidatesSQL walks the table from its start (NOT INDEXED: through
// events_by_state SQLite would sort every pending event), past dead letters
// and the batch in flight, to the oldest events in :state.
const evictCandidatesSQL = `SELECT seq, kind, length(payload), length(id) + length(kind), created_at
FROM events NOT INDEXED WHERE state = :state AND kind != '` + gapKind + `' AND (:shared OR ` + noOtherWaits + `)
ORDER BY seq LIMIT CAST(:limit AS INTEGER)`

// onlyPrimary keeps the primary's evictions to what no other sink waits
// for (outboxsinks.go): with several sinks, what goes for one sink that is
// behind is what only that sink still waits for. :minhwm is the lowest
// hwm of the others (outbox.minHWM).
const onlyPrimary = `
	AND ` + noOtherWaits

// noOtherWaits is the condition on an events row that no secondary waits
// for it.
const noOtherWaits = `(seq <= :minhwm AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.seq = events.seq))`

// evictKeepSQL is evictSQL for the events of a shared eviction (by age)
// that another sink still waits for: they stay, done for the primary.
const evictKeepSQL = `UPDATE events NOT INDEXED SET state = 3, claim = NULL
WHERE seq <= :last AND state = :state AND kind != '` + gapKind + `' AND NOT ` + noOtherWaits

// evictSQL removes the rows evictCandidatesSQL returned, up to :last, by
// rowid range.
const evictSQL = `DELETE FROM events NOT INDEXED
WHERE seq <= :last AND state = :state AND kind != '` + gapKind + `'` + onlyPrimary

// addMetaSQL adds to a number kept in the meta table.
const addMetaSQL = `INSERT INTO meta (key, value) VALUES (:key, :n)
ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + :n AS TEXT)`

// evict runs one eviction: in one transaction it removes what p says, at
// most evictChunk events, and inserts the gap event that reports them and
// adds them to the totals status shows. Since the gap is written with the
// eviction, every event accepted is, at every commit, either in the outbox,
// delivered, or counted by a gap that will be. It returns the gap (Evicted
// 0 when nothing went) and whether it stopped at evictChunk.
func (o *outbox) evict(p evictPlan) (g gap, more bool, err error) {
	g = gap{Kinds: map[string]int64{}, Reason: p.reason, Exact: true}
	end, err := o.begin()
	if err != nil {
		return g, false, fmt.Errorf("evict: %w", err)
	}
	defer end(&err)
	top, err := o.maxSeq()
	if err != nil {
		return g, false, fmt.Errorf("evict: %w", err)
	}
	if err := o.evictRounds(&p, &g); err != nil {
		return g, false, fmt.Errorf("evict: %w", err)
	}
	if g.Evicted == 0 {
		return g, false, nil
	}
	// Before the gap's insert, which appends.
	if err := o.rebase(top, p.removed); err != nil {
		return g, false, fmt.Errorf("evict: %w", err)
	}
	g.FirstCreatedAt, g.LastCreatedAt = wireTime(g.first), wireTime(g.last)
	payload, err := json.Marshal(g)
	if err != nil {
		return g, false, err
	}
	now := o.now()
	id := newEventID(now)
	if err := insertEvent(o.conn, id, gapKind, payload, now); err != nil {
		return g, false, fmt.Errorf("record gap: %w", err)
	}
	// The gap is the primary's alone: the others lost nothing.
	err = sqlitex.Execute(o.conn, `UPDATE events SET sink = :sink WHERE id = :id AND EXISTS (SELECT 1 FROM sinks)`,
		&sqlitex.ExecOptions{Named: map[string]any{":sink": cmp.Or(o.primary, defaultSinkName), ":id": id}})
	if err != nil {
		return g, false, fmt.Errorf("record gap: %w", err)
	}
	for key, n := range map[string]int64{"evicted_events": g.Evicted, "evicted_bytes": g.Bytes, "gaps": 1} {
		if err := sqlitex.Execute(o.conn, addMetaSQL, &sqlitex.ExecOptions{Named: map[string]any{":key": key, ":n": n}}); err != nil {
			return g, false, fmt.Errorf("record gap: %w", err)
		}
	}
	return g, g.Evicted >= evictChunk, nil
}

// evictRounds removes what p says in rounds, measuring what is over
// after each. A row's cost (payload, id, kind and rowOverhead) is only an
// estimate of what its delete frees: pages, two indexes and their slack
// make it some 30 % more for typical rows, and a delete frees a page only
// once the page is empty. So the first round takes rows estimated at half
// of what is over, and each later round three quarters of what is still
// over, scaled by what the rounds so far freed per byte estimated: a round
// never takes much more than is over, the rounds shrink geometrically to
// one row at a time, and the eviction stops at the first measure at or
// under the target, a row or a page below it at most.
func (o *outbox) evictRounds(p *evictPlan, g *gap) error {
	over, err := p.over()
	if err != nil {
		return err
	}
	var freed, estimated int64 // over all rounds so far
	for g.Evicted < evictChunk && over > 0 {
		budget := over / 2
		if freed > 0 && estimated > 0 {
			budget = int64(float64(over) * float64(estimated) / float64(freed) * 3 / 4)
		}
		n, est, err := o.evictRound(p, max(budget, 1), evictChunk-g.Evicted, g)
		if err != nil || n == 0 {
			return err
		}
		next, err := p.over()
		if err != nil {
			return err
		}
		freed, estimated, over = freed+over-next, estimated+est, next
	}
	return nil
}

// evictRound removes the oldest candidates until their estimated cost
// reaches budget, at most limit of them, adding each to g, and reports how
// many went and their estimated cost.
func (o *outbox) evictRound(p *evictPlan, budget, limit int64, g *gap) (n, est int64, err error) {
	stmt, err := o.conn.Prepare(evictCandidatesSQL)
	if err != nil {
		return 0, 0, err
	}
	minHWM, err := o.minHWM()
	if err != nil {
		return 0, 0, err
	}
	stmt.SetInt64(":state", int64(p.state))
	stmt.SetInt64(":limit", limit)
	stmt.SetInt64(":minhwm", minHWM)
	stmt.SetBool(":shared", p.reason == reasonMaxAge)
	var last int64
	for est < budget {
		row, err := stmt.Step()
		if err != nil {
			stmt.Reset()
			return 0, 0, err
		}
		if !row || p.before != 0 && stmt.ColumnInt64(4) >= p.before {
			break
		}
		payload := stmt.ColumnInt64(2)
		g.add(stmt.ColumnText(1), payload, stmt.ColumnInt64(4))
		est += p.cost(payload, stmt.ColumnInt64(3))
		last = stmt.ColumnInt64(0)
		n++
	}
	if err := stmt.Reset(); err != nil || n == 0 {
		return 0, 0, err
	}
	named := map[string]any{":last": last, ":state": p.state, ":minhwm": minHWM}
	kept := 0
	if p.reason == reasonMaxAge && minHWM != math.MaxInt64 {
		// By age, the primary evicts what is too old for it, whoever
		// else waits for it: those events stay for the others.
		if err := sqlitex.Execute(o.conn, evictKeepSQL, &sqlitex.ExecOptions{Named: named}); err != nil {
			return 0, 0, err
		}
		kept = o.conn.Changes()
	}
	err = sqlitex.Execute(o.conn, evictSQL, &sqlitex.ExecOptions{Named: named})
	if err == nil && int64(kept+o.conn.Changes()) != n {
		err = fmt.Errorf("removed %d events, counted %d", kept+o.conn.Changes(), n)
	}
	p.removed += int64(o.conn.Changes())
	return n, est, err
}

// storeSize is how much of the disk the outbox takes.
type storeSize struct {
	used int64 // pages in use × page size: what the limits measure
	file int64 // the database file, free pages included (not the WAL)
}

func (o *outbox) size() (storeSize, error) {
	var v [3]int64
	for i, name := range []string{"page_count", "freelist_count", "page_size"} {
		n, err := o.pragmaInt(name)
		if err != nil {
			return storeSize{}, fmt.Errorf("outbox size: %w", err)
		}
		v[i] = n
	}
	return storeSize{used: (v[0] - v[1]) * v[2], file: v[0] * v[2]}, nil
}

// deadBytes is the payload bytes of the dead letters: a walk of the dead
// letters alone, bounded by their limit, which the limiter takes at most
// once every deadCheckEvery.
func (o *outbox) deadBytes() (int64, error) {
	var n int64
	err := sqlitex.Execute(o.conn, `SELECT coalesce(sum(length(payload)), 0) FROM events WHERE state = 2`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
	})
	return n, err
}

// oldestPending is the creation time of the oldest pending event that is
// not a gap report, in queue order, and false when there is none.
func (o *outbox) oldestPending() (int64, bool, error) {
	var at int64
	var ok bool
	err := sqlitex.Execute(o.conn, `SELECT created_at FROM events NOT INDEXED
WHERE state = 0 AND kind != '`+gapKind+`' ORDER BY seq LIMIT 1`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { at, ok = stmt.ColumnInt64(0), true; return nil },
	})
	return at, ok, err
}

// limiter keeps the outbox within its limits: the daemon's housekeeping
// runs enforce.
type limiter struct {
	limits
	dir  string // the data home, whose file system's free space counts
	now  func() time.Time
	log  *slog.Logger
	disk func(dir string) (free, total uint64, err error) // diskSpace, or a test's

	// taking reports whether the endpoint takes events (drainer.taking),
	// nil when there is no daemon delivering. held is the outbox size the
	// free-disk reserve lets the outbox keep (hold, sizeLimit).
	taking  func() bool
	held    int64
	heldSet bool

	// sinkAges are the max_age of the sinks that set their own
	// (sinklimits.go).
	sinkAges map[string]time.Duration

	recorded    *outbox   // the outbox the limits were last written into, for status
	deadChecked time.Time // when the dead letters' share was last measured

	// What enforce last measured, for dueWithoutNews.
	oldest    int64     // created_at of the oldest pending event, when oldestOK
	oldestOK  bool      // false: no pending event
	deadStale bool      // a run skipped measuring the dead letters (deadCheckEvery)
	size      storeSize // the outbox's size, when sized
	sized     bool
}

// setLimits makes l the limits from the next enforce on, which records
// them for status: a reload of config.toml calls it.
func (l *limiter) setLimits(lim limits) {
	if lim != l.limits {
		l.limits, l.recorded = lim, nil
	}
}

// deadCheckEvery is how often the limiter measures the dead letters'
// share: a walk of them all, and they change seldom.
const deadCheckEvery = time.Minute

func newLimiter(l limits, h home, now func() time.Time, log *slog.Logger) *limiter {
	return &limiter{limits: l, dir: h.dir, now: now, log: log, disk: diskSpace}
}

// enforce runs what eviction is due, oldest first: by age, the dead
// letters' share, then the size; with all false, the size alone, whose
// measure costs microseconds. It reports whether it evicted anything (free
// pages to give back) and whether a run stopped at evictChunk, so that the
// daemon runs it again before it sleeps. An error is logged: the limits
// must never stop delivery.
func (l *limiter) enforce(ob *outbox, all bool) (evicted, more bool) {
	if l.recorded != ob {
		kv := map[string]string{"max_size": strconv.FormatInt(l.maxSize, 10), "max_age": l.maxAge.String(),
			"max_size_source": l.sizeFrom, "max_age_source": l.ageFrom}
		if err := ob.setMeta(kv); err != nil {
			l.log.Warn("record limits", "error", err)
		} else {
			l.recorded = ob
		}
	}
	plans := []func(*outbox) (evictPlan, bool, error){l.sizePlan}
	if all {
		plans = []func(*outbox) (evictPlan, bool, error){l.agePlan, l.deadPlan, l.sizePlan}
	}
	for _, plan := range plans {
		p, due, err := plan(ob)
		if err == nil && due {
			var g gap
			var m bool
			if g, m, err = ob.evict(p); err == nil && g.Evicted > 0 {
				evicted, more = true, more || m
				l.log.Warn("evicted the oldest events: a gap event reports them", "reason", g.Reason, "state", p.state,
					"events", g.Evicted, "bytes", g.Bytes, "first_created_at", g.FirstCreatedAt, "last_created_at", g.LastCreatedAt)
			}
		}
		if err != nil {
			l.log.Error("outbox limits", "error", err)
		}
	}
	// The secondaries' size limit is measured on the same outbox: the
	// primary's measure (sizePlan) stands while the primary evicted
	// nothing, rather than a second one, three PRAGMAs that cost a sink
	// home twice the housekeeping of a home with one sink.
	var sz *storeSize
	if l.sized && !evicted {
		sz = &l.size
	}
	if l.enforceSinks(ob, all, sz) {
		evicted = true
	}
	return evicted, more
}

// agePlan evicts the pending events older than max_age once the oldest is
// older than max_age plus its slack, so that a steady trickle of expiring
// events makes one gap per slack, not one per event.
func (l *limiter) agePlan(ob *outbox) (evictPlan, bool, error) {
	if l.maxAge <= 0 {
		return evictPlan{}, false, nil
	}
	oldest, ok, err := ob.oldestPending()
	l.oldest, l.oldestOK = oldest, ok || err != nil // unknown counts as due
	now := l.now()
	if err != nil || !ok || oldest >= now.Add(-l.maxAge-l.maxAge/evictSlack).UnixMilli() {
		return evictPlan{}, false, err
	}
	return evictPlan{
		state: statePending, reason: reasonMaxAge, before: now.Add(-l.maxAge).UnixMilli(),
		over: func() (int64, error) { return 1, nil },
		cost: func(int64, int64) int64 { return 0 },
	}, true, nil
}

// deadPlan evicts the oldest dead letters once their payloads take more
// than deadShare of max_size.
func (l *limiter) deadPlan(ob *outbox) (evictPlan, bool, error) {
	now := l.now()
	if now.Sub(l.deadChecked) < deadCheckEvery && !now.Before(l.deadChecked) {
		l.deadStale = true
		return evictPlan{}, false, nil
	}
	l.deadChecked = now
	limit := l.maxSize * deadShare / 100
	dead, err := ob.deadBytes()
	l.deadStale = err != nil
	if err != nil || dead <= limit {
		return evictPlan{}, false, err
	}
	target := limit - limit/evictSlack
	return evictPlan{
		state: stateDead, reason: reasonMaxSize,
		over: func() (int64, error) {
			n, err := ob.deadBytes()
			return n - target, err
		},
		cost: func(payload, _ int64) int64 { return payload },
	}, true, nil
}

// sizePlan evicts the oldest pending events once the outbox's pages in use
// pass its size limit (sizeLimit): max_size, or less when the outbox
// would grow into the free-disk reserve while the endpoint takes no
// events.
func (l *limiter) sizePlan(ob *outbox) (evictPlan, bool, error) {
	sz, err := ob.size()
	l.size, l.sized = sz, err == nil
	if err != nil {
		return evictPlan{}, false, err
	}
	l.hold(sz)
	limit, err := l.sizeLimit(sz)
	if err != nil {
		l.log.Warn("free disk space", "error", err)
	}
	if sz.used <= limit {
		return evictPlan{}, false, nil
	}
	target := limit - limit/sizeSlack
	return evictPlan{
		state: statePending, reason: reasonMaxSize,
		over: func() (int64, error) {
			sz, err := ob.size()
			return sz.used - target, err
		},
		cost: func(payload, idKind int64) int64 { return payload + idKind + rowOverhead },
	}, true, nil
}

// sizeLimit is the most the outbox may use: max_size, or less when the
// outbox would otherwise grow into the last minFreeDisk percent of the
// disk. The outbox may keep its file and take what is free beyond that
// reserve; and whatever the disk, it may keep what it held when the
// endpoint last took events (held): evicting a few KB of events gives a
// full disk next to nothing back, and it must not throw away events a
// healthy endpoint is about to take, each before its first attempt. So
// the reserve keeps the outbox from growing while the endpoint does not
// take events, and never makes it shrink. Where the free space cannot be
// read, max_size alone limits, and err says why (none where the OS gives
// no free space).
func (l *limiter) sizeLimit(sz storeSize) (int64, error) {
	free, total, err := l.disk(l.dir)
	if err != nil || total == 0 {
		if errors.Is(err, errNoDiskInfo) {
			err = nil
		}
		return l.maxSize, err
	}
	room := sz.file + int64(free) - int64(total*minFreeDisk/100)
	return min(l.maxSize, max(room, l.held)), nil
}

// hold notes the outbox's size as what the free-disk reserve lets it keep
// (sizeLimit): at the first measure, and at each while the endpoint takes
// events, whose deliveries make the outbox shrink as it should.
func (l *limiter) hold(sz storeSize) {
	if !l.heldSet || l.taking != nil && l.taking() {
		l.held, l.heldSet = sz.used, true
	}
}

// diskFigures are a file system's size and free space, in bytes, as
// statfs gives them: total (f_blocks), free (f_bfree) and what is free
// for users without the privilege to write into the blocks the file
// system keeps for root (f_bavail).
type diskFigures struct {
	total, free, avail uint64
}

// forUser is the disk as df counts it: the space free is what is
// available (f_bavail), and the size is what is used plus that, so that
// the share free is 100 less df's Use%. The root reserve counts neither
// as free nor as used, for the daemon of any user: root may write into it
// only with CAP_SYS_RESOURCE (a container's root often may not), and it
// is there for the system's own needs when a disk is full, not for
// queued events.
func (f diskFigures) forUser() (free, total uint64) {
	used := f.total - min(f.free, f.total)
	return f.avail, used + f.avail
}

// diskSpace is the space free for the daemon's user and the size of the
// file system that holds dir, in bytes, as df counts them
// (diskFigures.forUser).
func diskSpace(dir string) (free, total uint64, err error) {
	f, err := statDisk(dir)
	if err != nil {
		return 0, 0, err
	}
	free, total = f.forUser()
	return free, total, nil
}

// dueWithoutNews reports whether enforce may have something to do though
// nothing was committed to the outbox since it last ran: the oldest
// pending event has passed max_age and its slack, a run skipped measuring
// the dead letters and deadCheckEvery has passed since they were, or,
// when some event is pending (which is what sizePlan evicts), the disk
// filled under the outbox's share. It reads
// the clock and the free disk space, never the outbox: the daemon's
// safety net asks it between passes (daemon.nothingNew).
func (l *limiter) dueWithoutNews(pending bool) bool {
	now := l.now()
	if !l.sized || l.deadStale && now.Sub(l.deadChecked) >= deadCheckEvery {
		return true
	}
	if due, ok := l.ageDue(); ok && !now.Before(due) {
		return true
	}
	if !pending {
		return false // The disk filling could make nothing to evict.
	}
	limit, err := l.sizeLimit(l.size)
	return err != nil || l.size.used > limit
}

// ageDue is when the oldest pending event, as last measured, has passed
// max_age and its slack: the first millisecond at which agePlan evicts.
// ok is false with no max_age or no pending event.
func (l *limiter) ageDue() (time.Time, bool) {
	if l.maxAge <= 0 || !l.oldestOK {
		return time.Time{}, false
	}
	return time.UnixMilli(l.oldest).Add(l.maxAge + l.maxAge/evictSlack + time.Millisecond), true
}

// errNoDiskInfo is what diskSpace returns where the OS gives no free
// space: the disk then limits nothing, max_size still does.
var errNoDiskInfo = errors.New("free disk space not known on this system")
