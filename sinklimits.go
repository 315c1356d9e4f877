package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The limits for the sinks beyond the first (outboxsinks.go): over
// max_size, what goes for a secondary that is behind is what only it still
// waits for, oldest first; past its max_age, what it waits for that is
// older, whoever else waits for it too. Either way that sink alone
// receives the difflore.gap that reports it, and the event rows go once no
// sink waits for them.

// onlyFor is the condition on an events row (as e) that no sink but :sink
// waits for it: the primary is done (stateDone), and no other secondary
// has a row for it or has yet to reach it.
const onlyFor = `(e.state = 3
	AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.seq = e.seq AND o.sink != :sink)
	AND e.seq <= (SELECT coalesce(min(hwm), 9223372036854775807) FROM sinks WHERE name != :sink))`

// sinkRetriesSQL lists the secondary's events waiting for a retry (below
// its hwm) that may be evicted, in queue order.
const sinkRetriesSQL = `SELECT e.seq, e.kind, length(e.payload), length(e.id) + length(e.kind), e.created_at
FROM deliveries d JOIN events e ON e.seq = d.seq
WHERE d.sink = CAST(:sink AS TEXT) AND d.state = 0 AND e.kind != '` + gapKind + `'
	AND (:shared OR ` + onlyFor + `) AND (:before = 0 OR e.created_at < :before)
ORDER BY d.seq LIMIT CAST(:limit AS INTEGER)`

// sinkFreshWalkSQL walks the events above the secondary's hwm in queue
// order, saying for each whether the sink receives it and whether no
// other sink waits for it.
const sinkFreshWalkSQL = `SELECT e.seq, e.kind, length(e.payload), length(e.id) + length(e.kind), e.created_at,
	` + forSecondary + `, ` + onlyFor + `
FROM events e WHERE e.seq > :hwm ORDER BY e.seq LIMIT CAST(:limit AS INTEGER)`

const (
	sinkHWMSQL        = `SELECT hwm FROM sinks WHERE name = :sink`
	sinkSetHWMSQL     = `UPDATE sinks SET hwm = :hwm WHERE name = :sink`
	sinkDropRetrySQL  = `DELETE FROM deliveries WHERE sink = :sink AND seq = :seq AND state = 0`
	sinkWaitSQL       = `INSERT INTO deliveries (seq, sink, state, attempts, available_at) VALUES (:seq, :sink, 0, 0, :at)`
	sinkGapSQL        = `UPDATE events SET state = 3, sink = :sink WHERE id = :id`
	sinkOldestSQL     = `SELECT min(created_at) FROM (SELECT e.created_at FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.sink = CAST(:sink AS TEXT) AND d.state = 0 AND e.kind != '` + gapKind + `' UNION ALL SELECT * FROM (SELECT e.created_at FROM events e WHERE e.seq > (SELECT hwm FROM sinks WHERE name = :sink) AND ` + forSecondary + ` AND e.kind != '` + gapKind + `' ORDER BY e.seq LIMIT 1))`
	secondaryNamesSQL = `SELECT name FROM sinks ORDER BY name`
)

// sinkEvictPlan says what one eviction for a secondary takes: with shared
// unset only what no other sink waits for; with before set only what was
// created before it; until over is no longer positive.
type sinkEvictPlan struct {
	sink   string
	reason string
	shared bool
	before int64 // Unix milliseconds; 0: any age
	over   func() (int64, error)
}

// evictFor runs one eviction for a secondary in one transaction: its
// retries first, then the events above its hwm, oldest first, in rounds
// measured by p.over; then the gap event, for that sink alone.
func (o *outbox) evictFor(p sinkEvictPlan) (g gap, err error) {
	g = gap{Kinds: map[string]int64{}, Reason: p.reason, Exact: true}
	end, err := o.begin()
	if err != nil {
		return g, fmt.Errorf("evict: %w", err)
	}
	defer end(&err)
	over, err := p.over()
	for err == nil && over > 0 && g.Evicted < evictChunk {
		var n int64
		if n, err = o.evictRoundFor(p, over, &g); err != nil || n == 0 {
			break
		}
		over, err = p.over()
	}
	if err != nil || g.Evicted == 0 {
		return g, err
	}
	g.FirstCreatedAt, g.LastCreatedAt = wireTime(g.first), wireTime(g.last)
	payload, err := json.Marshal(g)
	if err != nil {
		return g, err
	}
	now := o.now()
	id := newEventID(now)
	if err := insertEvent(o.conn, id, gapKind, payload, now); err != nil {
		return g, fmt.Errorf("record gap: %w", err)
	}
	named := map[string]any{":sink": p.sink, ":id": id}
	if err := sqlitex.Execute(o.conn, sinkGapSQL, &sqlitex.ExecOptions{Named: named}); err != nil {
		return g, fmt.Errorf("record gap: %w", err)
	}
	q := &sinkQueue{ob: o, name: p.sink}
	if err := q.add(map[string]any{":evicted": g.Evicted}); err != nil {
		return g, fmt.Errorf("record gap: %w", err)
	}
	for key, n := range map[string]int64{"evicted_events": g.Evicted, "evicted_bytes": g.Bytes, "gaps": 1} {
		if err := sqlitex.Execute(o.conn, addMetaSQL, &sqlitex.ExecOptions{Named: map[string]any{":key": key, ":n": n}}); err != nil {
			return g, fmt.Errorf("record gap: %w", err)
		}
	}
	return g, nil
}

// evictRoundFor evicts for the secondary events estimated to free over
// bytes, and reports how many went. Every row it passes above the sink's
// hwm is evicted for it, or kept waiting as a retry row, so that hwm may
// move past them all.
func (o *outbox) evictRoundFor(p sinkEvictPlan, over int64, g *gap) (int64, error) {
	named := map[string]any{":sink": p.sink, ":shared": p.shared, ":before": p.before, ":limit": evictChunk - g.Evicted}
	var seqs []int64
	var est int64
	take := func(stmt *sqlite.Stmt) {
		seqs = append(seqs, stmt.ColumnInt64(0))
		g.add(stmt.ColumnText(1), stmt.ColumnInt64(2), stmt.ColumnInt64(4))
		est += stmt.ColumnInt64(2) + stmt.ColumnInt64(3) + rowOverhead
	}
	err := sqlitex.Execute(o.conn, sinkRetriesSQL, &sqlitex.ExecOptions{Named: named, ResultFunc: func(stmt *sqlite.Stmt) error {
		if est < over {
			take(stmt)
		}
		return nil
	}})
	if err != nil {
		return 0, err
	}
	for _, s := range seqs {
		if err := sqlitex.Execute(o.conn, sinkDropRetrySQL, &sqlitex.ExecOptions{Named: map[string]any{":sink": p.sink, ":seq": s}}); err != nil {
			return 0, err
		}
	}
	if est < over {
		if err := o.evictFreshFor(p, over, &est, &seqs, take, g); err != nil {
			return 0, err
		}
	}
	if err := o.dropDone(seqs); err != nil {
		return 0, err
	}
	return int64(len(seqs)), nil
}

// evictFreshFor is evictRoundFor's walk above the secondary's hwm.
func (o *outbox) evictFreshFor(p sinkEvictPlan, over int64, est *int64, seqs *[]int64, take func(*sqlite.Stmt), g *gap) error {
	var hwm int64
	err := sqlitex.Execute(o.conn, sinkHWMSQL, &sqlitex.ExecOptions{Named: map[string]any{":sink": p.sink},
		ResultFunc: func(stmt *sqlite.Stmt) error { hwm = stmt.ColumnInt64(0); return nil }})
	if err != nil {
		return err
	}
	var waits [][2]int64 // seq, created_at of events kept waiting
	passed := hwm
	err = sqlitex.Execute(o.conn, sinkFreshWalkSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":sink": p.sink, ":hwm": hwm, ":limit": evictChunk - g.Evicted},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if *est >= over || p.before != 0 && stmt.ColumnInt64(4) >= p.before {
				return errStopWalk()
			}
			seq, receives, only := stmt.ColumnInt64(0), stmt.ColumnBool(5), stmt.ColumnBool(6)
			switch {
			case !receives:
			case stmt.ColumnText(1) == gapKind || !p.shared && !only:
				waits = append(waits, [2]int64{seq, stmt.ColumnInt64(4)})
			default:
				take(stmt)
			}
			passed = seq
			return nil
		},
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	for _, w := range waits {
		if err := sqlitex.Execute(o.conn, sinkWaitSQL, &sqlitex.ExecOptions{Named: map[string]any{":sink": p.sink, ":seq": w[0], ":at": w[1]}}); err != nil {
			return err
		}
	}
	if passed == hwm {
		return nil
	}
	if err := sqlitex.Execute(o.conn, sinkSetHWMSQL, &sqlitex.ExecOptions{Named: map[string]any{":sink": p.sink, ":hwm": passed}}); err != nil {
		return err
	}
	return o.dropPassed(hwm, passed)
}

// errStopWalk ends a walk of rows early; it never leaves evictFreshFor.
func errStopWalk() error { return errStop }

// errStop is the value errStopWalk returns.
const errStop = stopError("stop walk")

// stopError is an error that is a constant.
type stopError string

func (e stopError) Error() string { return string(e) }

// dropPassedSQL deletes the events in (:from, :to] every sink is done
// with: a secondary moved its hwm past them, and they may be events it
// never receives (another sink's gap) that nothing else would delete.
const dropPassedSQL = `DELETE FROM events WHERE seq > :from AND seq <= :to AND state = 3
	AND seq <= (SELECT coalesce(min(hwm), 0) FROM sinks)
	AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.seq = events.seq)`

// dropPassed runs dropPassedSQL, keeping countsSQL right.
func (o *outbox) dropPassed(from, to int64) error {
	top, err := o.maxSeq()
	if err != nil {
		return err
	}
	if err := sqlitex.Execute(o.conn, dropPassedSQL, &sqlitex.ExecOptions{Named: map[string]any{":from": from, ":to": to}}); err != nil {
		return err
	}
	return o.rebase(top, int64(o.conn.Changes()))
}

// secondaryNames lists the secondaries the outbox holds progress for.
func (o *outbox) secondaryNames() ([]string, error) {
	var names []string
	err := sqlitex.Execute(o.conn, secondaryNamesSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { names = append(names, stmt.ColumnText(0)); return nil },
	})
	return names, err
}

// oldestFor is the creation time of the oldest event the secondary waits
// for, and false when it waits for none.
func (o *outbox) oldestFor(name string) (int64, bool, error) {
	var at int64
	var ok bool
	err := sqlitex.Execute(o.conn, sinkOldestSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":sink": name},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if !stmt.ColumnIsNull(0) {
				at, ok = stmt.ColumnInt64(0), true
			}
			return nil
		},
	})
	return at, ok, err
}

// enforceSinks runs the secondaries' limits after the primary's (enforce):
// each one's max_age (its own, else the top-level one), then, while the
// outbox is still over its size limit, what only each still waits for.
// measured is the outbox's size as enforce just measured it, nil to
// measure it anew.
func (l *limiter) enforceSinks(ob *outbox, all bool, measured *storeSize) (evicted bool) {
	names, err := ob.secondaryNames()
	if err != nil || len(names) == 0 {
		if err != nil {
			l.log.Error("outbox limits", "error", err)
		}
		return false
	}
	now := l.now()
	for _, name := range names {
		if !all {
			break
		}
		age := l.maxAge
		if a, ok := l.sinkAges[name]; ok && a > 0 {
			age = a
		}
		if age <= 0 {
			continue
		}
		oldest, ok, err := ob.oldestFor(name)
		if err != nil || !ok || oldest >= now.Add(-age-age/evictSlack).UnixMilli() {
			continue
		}
		evicted = l.logSinkGap(name)(ob.evictFor(sinkEvictPlan{sink: name, reason: reasonMaxAge, shared: true,
			before: now.Add(-age).UnixMilli(), over: func() (int64, error) { return math.MaxInt32, nil }})) || evicted
	}
	var sz storeSize
	if measured != nil && !evicted {
		sz = *measured
	} else if sz, err = ob.size(); err != nil {
		return evicted
	}
	limit, _ := l.sizeLimit(sz)
	if sz.used <= limit {
		return evicted
	}
	target := limit - limit/sizeSlack
	for _, name := range names {
		evicted = l.logSinkGap(name)(ob.evictFor(sinkEvictPlan{sink: name, reason: reasonMaxSize,
			over: func() (int64, error) {
				sz, err := ob.size()
				return sz.used - target, err
			}})) || evicted
	}
	return evicted
}

// logSinkGap logs an eviction for the secondary name, or its error, and
// reports whether anything went.
func (l *limiter) logSinkGap(name string) func(gap, error) bool {
	return func(g gap, err error) bool {
		if err != nil {
			l.log.Error("outbox limits", "sink", name, "error", err)
			return false
		}
		if g.Evicted == 0 {
			return false
		}
		l.log.Warn("evicted the oldest events for one sink: a gap event reports them to it", "sink", name, "reason", g.Reason,
			"events", g.Evicted, "bytes", g.Bytes, "first_created_at", g.FirstCreatedAt, "last_created_at", g.LastCreatedAt)
		return true
	}
}

// sinkAgesOf are the max_age of each sink that sets its own.
func sinkAgesOf(specs []sinkSpec) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, s := range specs {
		if s.maxAge > 0 {
			m[s.name] = s.maxAge
		}
	}
	return m
}
