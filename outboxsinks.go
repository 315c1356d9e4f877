package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// How several sinks share one outbox (DESIGN.md, Destinations).
//
// Each event is stored once, in events. The first sink (the primary: the
// shorthand "default", or else the first [[sink]] table) keeps its progress
// in the events rows themselves, exactly as a single sink always has
// (state, attempts, available_at, claim): a home with one sink runs the
// same statements as before sinks existed, at the same cost, and an outbox
// of an older release upgrades by adding two empty tables. Every other sink
// (a secondary) has a row in sinks holding a high-water mark, hwm, and rows
// in deliveries for the events it is not done with below it:
//
//   - an event above hwm that the sink may receive is fresh for it: not yet
//     tried, ready now. Nothing is written for it: enqueue writes its one
//     row whatever the number of sinks.
//   - a claim takes the retries due first, then fresh events in queue
//     order, writing a deliveries row (inflight) for each fresh event and
//     moving hwm past the last; the row carries its attempts, backoff,
//     claim token and error from then on, as the events columns do for the
//     primary.
//   - an event at or below hwm with no deliveries row is done for the sink
//     (delivered, or evicted and reported).
//
// So a secondary costs one small row per event in flight or waiting for a
// retry, none for an event it has done or not yet reached, and a sink that
// is down for a day holds back no other: its claims, backoff and dead
// letters are its own rows. The primary, done with an event that a
// secondary still waits for, keeps the row in state stateDone instead of
// deleting it; an event row goes once every sink is done with it
// (dropDoneSQL). A per-event state table for every sink (a row per event
// and sink, written at enqueue) was the alternative: it makes enqueue write
// a row per sink, and the single-sink drain twice as slow.

// migrateV3SQL brings a version 3 outbox to version 4: the sinks beyond
// the first. sink on an event row names the one sink a gap event is for
// (NULL: every sink). No row is rewritten: the primary's progress is the
// events columns it always was.
const migrateV3SQL = addSinkColumnSQL + `
CREATE TABLE IF NOT EXISTS sinks (
	name      TEXT PRIMARY KEY,
	hwm       INTEGER NOT NULL DEFAULT 0,
	delivered INTEGER NOT NULL DEFAULT 0,
	failed    INTEGER NOT NULL DEFAULT 0,
	dead      INTEGER NOT NULL DEFAULT 0,
	evicted   INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
	seq          INTEGER NOT NULL,
	sink         TEXT    NOT NULL,
	state        INTEGER NOT NULL DEFAULT 0,
	attempts     INTEGER NOT NULL DEFAULT 0,
	available_at INTEGER NOT NULL,
	claim        TEXT,
	last_error   TEXT,
	PRIMARY KEY (seq, sink)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (sink, state, available_at, seq);
PRAGMA user_version = 4;
`

const addSinkColumnSQL = `ALTER TABLE events ADD COLUMN sink TEXT;`

// forSecondary is the condition on an events row (as e) that a secondary
// :sink may receive it: not a dead letter a hook handed over (raw, or
// refused at enqueue, which has no attempt), not a gap of another sink.
//
// The secondary's SELECTs compare a text column with CAST(:sink AS TEXT)
// (or :old), not with the bare parameter: SQLite plans a query that joins,
// orders or takes a min() and compares a text column with a bare parameter
// by the value bound, and so compiles it anew each time a value is bound
// (TestSecondaryStatementsStayPrepared). That cost each claim and look of
// a secondary tens of microseconds of CPU, taken from the sink delivering
// beside it (BenchmarkSinksLatency). The cast leaves the plan and the
// result as they were.
const forSecondary = `e.raw = 0 AND NOT (e.state = 2 AND e.attempts = 0)
	AND (e.sink IS NULL OR e.sink = CAST(:sink AS TEXT))`

// dropDoneSQL deletes the events :seqs (a JSON array, seqsJSON) once every
// secondary is done with them
// (past its hwm, or it never receives the event: a gap of another sink;
// and no deliveries row) and the primary too (stateDone). One statement
// for a batch, not one per event: a statement's start and end were most
// of the work of each (BenchmarkDrainSinks). The + keeps SQLite from
// walking events_by_state through every row done for the primary (a
// backlog that another sink is behind on) instead of looking up :seqs. (A row in
// stateDone is neither raw nor a hook's dead letter, so forSecondary
// comes down to its sink.) Waiting for every hwm to pass a gap of the
// first sink, which no other sink takes, left it in the outbox until
// the next reload swept it.
const dropDoneSQL = `DELETE FROM events WHERE seq IN (SELECT value FROM json_each(:seqs)) AND +state = 3
	AND NOT EXISTS (SELECT 1 FROM sinks s WHERE events.seq > s.hwm AND (events.sink IS NULL OR events.sink = s.name))
	AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.seq = events.seq)`

// sweepDoneSQL is dropDoneSQL for every event at once: after a sink was
// removed, or moved its hwm past events it does not receive.
const sweepDoneSQL = `DELETE FROM events WHERE state = 3
	AND NOT EXISTS (SELECT 1 FROM sinks s WHERE events.seq > s.hwm AND (events.sink IS NULL OR events.sink = s.name))
	AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.seq = events.seq)`

const hasSecondariesSQL = `SELECT EXISTS (SELECT 1 FROM sinks)`

// hasSecondaries reports whether any sink beyond the primary has progress
// in the outbox.
func (o *outbox) hasSecondaries() (bool, error) {
	var yes bool
	err := sqlitex.Execute(o.conn, hasSecondariesSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { yes = stmt.ColumnBool(0); return nil },
	})
	return yes, err
}

// minHWM is the lowest hwm of the secondaries, MaxInt64 when there are
// none: the primary may evict an event at or below it that no deliveries
// row names, since no secondary waits for it.
func (o *outbox) minHWM() (int64, error) {
	m := int64(math.MaxInt64)
	err := sqlitex.Execute(o.conn, `SELECT min(hwm) FROM sinks`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if !stmt.ColumnIsNull(0) {
				m = stmt.ColumnInt64(0)
			}
			return nil
		},
	})
	return m, err
}

// dropDone deletes those of seqs every sink is done with, keeping countsSQL
// right (rebase). top is max(seq) before the transaction's deletes.
func (o *outbox) dropDone(seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	top, err := o.maxSeq()
	if err != nil {
		return err
	}
	stmt, err := o.conn.Prepare(dropDoneSQL)
	if err != nil {
		return err
	}
	stmt.SetText(":seqs", seqsJSON(seqs))
	if err := stepOnce(stmt); err != nil {
		return err
	}
	return o.rebase(top, int64(o.conn.Changes()))
}

// seqsJSON is seqs as a JSON array, which a statement reads with
// json_each: one statement for a batch's events.
func seqsJSON(seqs []int64) string {
	b := make([]byte, 0, 2+8*len(seqs))
	b = append(b, '[')
	for i, s := range seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, s, 10)
	}
	return string(append(b, ']'))
}

// seqsOf are the seqs of events.
func seqsOf(events []event) []int64 {
	seqs := make([]int64, len(events))
	for i, e := range events {
		seqs[i] = e.Seq
	}
	return seqs
}

// sweepDone deletes every event every sink is done with.
func (o *outbox) sweepDone() (err error) {
	defer sqlitex.Save(o.conn)(&err)
	top, err := o.maxSeq()
	if err != nil {
		return err
	}
	if err := sqlitex.Execute(o.conn, sweepDoneSQL, nil); err != nil {
		return err
	}
	return o.rebase(top, int64(o.conn.Changes()))
}

// dropSinkSpansSQL deletes the spans a removed sink kept.
const dropSinkSpansSQL = `DELETE FROM spans WHERE sink = ?`

// syncSinks makes the sinks table hold the secondaries named, o.primary
// being the first sink: a new one starts at the largest seq (it receives
// the events queued from now on) or, in a home's first configuration, at
// 0 (sinkchange.go); one no longer named goes with its progress and dead
// letters; a first sink that is another than before takes its own
// progress into the events rows (movePrimary). It reports what it
// dropped. Without secondaries, events the primary held in stateDone for
// them go too.
func (o *outbox) syncSinks(secondaries []string) (dropped map[string]int64, err error) {
	err = o.immediate(func() error {
		hadSecondaries, err := o.hasSecondaries()
		if err != nil {
			return err
		}
		// The first sink may be another than the outbox recorded
		// (sinkchange.go); a sink added now starts from the events
		// queued from now on when the outbox delivered before.
		delivering, err := o.notePrimary(secondaries, hadSecondaries)
		if err != nil {
			return err
		}
		from := int64(0)
		if delivering {
			if from, err = o.maxSeq(); err != nil {
				return err
			}
		}
		var have []string
		err = sqlitex.Execute(o.conn, `SELECT name FROM sinks`, &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { have = append(have, stmt.ColumnText(0)); return nil },
		})
		if err != nil {
			return err
		}
		for _, name := range have {
			if slices.Contains(secondaries, name) {
				continue
			}
			if err := sqlitex.Execute(o.conn, `DELETE FROM deliveries WHERE sink = ?`, &sqlitex.ExecOptions{Args: []any{name}}); err != nil {
				return err
			}
			if dropped == nil {
				dropped = map[string]int64{}
			}
			dropped[name] = int64(o.conn.Changes())
			if err := sqlitex.Execute(o.conn, `DELETE FROM sinks WHERE name = ?`, &sqlitex.ExecOptions{Args: []any{name}}); err != nil {
				return err
			}
			// Its open spans (spanstore.go) go with it: a sink added again
			// under the name starts from the events, as a new one does.
			if err := sqlitex.Execute(o.conn, dropSinkSpansSQL, &sqlitex.ExecOptions{Args: []any{name}}); err != nil {
				return err
			}
		}
		for _, name := range secondaries {
			if err := sqlitex.Execute(o.conn, `INSERT INTO sinks (name, hwm) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
				&sqlitex.ExecOptions{Args: []any{name, from}}); err != nil {
				return err
			}
		}
		if len(secondaries) == 0 {
			// No secondary waits: what the primary is done with goes.
			top, err := o.maxSeq()
			if err != nil {
				return err
			}
			if err := sqlitex.Execute(o.conn, `DELETE FROM events WHERE state = 3`, nil); err != nil {
				return err
			}
			return o.rebase(top, int64(o.conn.Changes()))
		}
		return o.sweepDone()
	})
	if err != nil {
		return nil, fmt.Errorf("sync sinks: %w", err)
	}
	o.shared = len(secondaries) > 0
	return dropped, nil
}

// sinkQueue is a secondary's view of the outbox: the queue its drainer
// claims from and settles into. It owns its connection (ob): each
// secondary's drainer runs in its own goroutine.
type sinkQueue struct {
	ob   *outbox
	name string
}

// The secondary's statements: the primary's (outboxclaim.go) on its
// deliveries rows.
const (
	sqReclaimSQL = `UPDATE deliveries SET ` + giveBackOrBury + `
WHERE sink = :sink AND state = 1 AND available_at <= :now`
	sqResetSQL   = `UPDATE deliveries SET ` + giveBackOrBury + ` WHERE sink = :sink AND state = 1`
	sqCapWaitSQL = `UPDATE deliveries SET available_at = :cap WHERE sink = :sink AND state = 0 AND available_at > :cap`
	sqReadySQL   = `SELECT d.seq, e.id, e.kind, e.payload, e.created_at, d.attempts, CASE WHEN d.available_at = 0 THEN d.claim END
FROM deliveries d JOIN events e ON e.seq = d.seq
WHERE d.sink = CAST(:sink AS TEXT) AND d.state = 0 AND d.available_at <= :now
ORDER BY d.available_at, d.seq LIMIT CAST(:limit AS INTEGER)`
	sqGivenBackSQL = `SELECT d.seq, e.id, e.kind, e.payload, e.created_at, d.attempts
FROM deliveries d JOIN events e ON e.seq = d.seq
WHERE d.sink = CAST(:sink AS TEXT) AND d.state = 0 AND d.available_at = 0 AND d.claim = CAST(:old AS TEXT)`
	sqFreshSQL = `SELECT e.seq, e.id, e.kind, e.payload, e.created_at, 0 FROM events e
WHERE e.seq > (SELECT hwm FROM sinks WHERE name = :sink) AND ` + forSecondary + `
ORDER BY e.seq LIMIT CAST(:limit AS INTEGER)`
	sqMarkSQL = `UPDATE deliveries SET state = 1, claim = :claim, available_at = :lease, attempts = attempts + 1
WHERE sink = :sink AND seq = :seq`
	// sqInsertSQL writes the deliveries rows of the fresh events a claim
	// read (sqFreshSQL, in the same transaction): every event it names
	// above hwm up to the last one read, :last. OR FAIL: no statement
	// journal, as ackDoneSQL.
	sqInsertSQL = `INSERT OR FAIL INTO deliveries (seq, sink, state, attempts, available_at, claim)
SELECT e.seq, :sink, 1, 1, :lease, :claim FROM events e
WHERE e.seq > (SELECT hwm FROM sinks WHERE name = :sink) AND e.seq <= :last AND ` + forSecondary
	sqHWMSQL     = `UPDATE sinks SET hwm = max(hwm, :hwm) WHERE name = :sink`
	sqAckSQL     = `DELETE FROM deliveries WHERE sink = :sink AND claim = :claim AND seq IN (SELECT value FROM json_each(:seqs)) RETURNING seq`
	sqReleaseSQL = `UPDATE deliveries SET
	state = CASE WHEN :counted AND attempts >= :max THEN 2 ELSE 0 END,
	attempts = attempts - (1 - :counted),
	available_at = :at,
	claim = NULL,
	last_error = coalesce(:error, last_error)
WHERE sink = :sink AND seq = :seq AND claim = :claim`
	sqGiveBackSQL = `UPDATE deliveries SET state = 0, attempts = attempts - 1, available_at = 0
WHERE sink = :sink AND seq = :seq AND claim = :claim`
	sqDeadSQL = `UPDATE deliveries SET state = 2, claim = NULL, last_error = :error
WHERE sink = :sink AND seq = :seq AND claim = :claim`
	sqAddSQL = `UPDATE sinks SET delivered = delivered + :delivered, failed = failed + :failed,
	dead = dead + :dead, evicted = evicted + :evicted WHERE name = :sink`
	sqNextSQL = `SELECT min(available_at) FROM deliveries WHERE sink = CAST(:sink AS TEXT) AND state = 0`
	// sqAnyWorkSQL is anyWorkSQL for a secondary, and a fresh event.
	sqAnyWorkSQL = `SELECT EXISTS (SELECT 1 FROM deliveries WHERE sink = :sink AND state = 0 AND available_at <= :now)
	OR EXISTS (SELECT 1 FROM deliveries WHERE sink = :sink AND state = 0 AND available_at > :cap)
	OR EXISTS (SELECT 1 FROM deliveries WHERE sink = :sink AND state = 1 AND available_at <= :now)
	OR EXISTS (SELECT 1 FROM events e WHERE e.seq > (SELECT hwm FROM sinks WHERE name = :sink) AND ` + forSecondary + `)`
)

func (q *sinkQueue) named(args map[string]any) map[string]any {
	m := map[string]any{":sink": q.name}
	for k, v := range args {
		m[k] = v
	}
	return m
}

// claim is outbox.claim for the secondary: a batch given back goes out
// again whole; else the retries due, then fresh events, up to limit
// events and budget bytes.
func (q *sinkQueue) claim(limit, budget int, lease time.Duration) (token string, events []event, err error) {
	o := q.ob
	now := o.now()
	// Like the primary's claim with other sinks (outbox.shared): no
	// write lock when there is nothing to claim.
	if ok, err := o.anyWork(sqAnyWorkSQL, map[string]any{":sink": q.name}, now); err != nil || !ok {
		return "", nil, err
	}
	token = newToken()
	end, err := o.begin()
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	defer end(&err)
	if err := sqlitex.Execute(o.conn, sqReclaimSQL, &sqlitex.ExecOptions{Named: q.named(map[string]any{":now": now.UnixMilli(), ":max": maxAttempts})}); err != nil {
		return "", nil, fmt.Errorf("reclaim: %w", err)
	}
	if err := sqlitex.Execute(o.conn, sqCapWaitSQL, &sqlitex.ExecOptions{Named: q.named(map[string]any{":cap": now.Add(maxWait).UnixMilli()})}); err != nil {
		return "", nil, fmt.Errorf("cap waits: %w", err)
	}
	ready, old, size, err := q.read(sqReadySQL, map[string]any{":now": now.UnixMilli(), ":limit": limit}, budget, 0, true)
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	if old != "" {
		events, _, _, err = q.read(sqGivenBackSQL, map[string]any{":old": old}, math.MaxInt, 0, false)
		if err == nil {
			err = q.forEach(sqMarkSQL, token, events, map[string]any{":lease": now.Add(lease).UnixMilli()})
		}
		if err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
		for i := range events {
			events[i].Attempt++
		}
		return token, events, nil
	}
	var fresh []event
	if len(ready) < limit && (len(ready) == 0 || size < budget) {
		fresh, _, _, err = q.read(sqFreshSQL, map[string]any{":limit": limit - len(ready)}, budget, size, len(ready) == 0)
		if err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
	}
	args := map[string]any{":lease": now.Add(lease).UnixMilli()}
	if err := q.forEach(sqMarkSQL, token, ready, args); err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	if len(fresh) > 0 {
		args[":claim"], args[":last"] = token, fresh[len(fresh)-1].Seq
		if err := sqlitex.Execute(o.conn, sqInsertSQL, &sqlitex.ExecOptions{Named: q.named(args)}); err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
		if err := sqlitex.Execute(o.conn, sqHWMSQL, &sqlitex.ExecOptions{Named: q.named(map[string]any{":hwm": fresh[len(fresh)-1].Seq})}); err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
	}
	events = append(ready, fresh...)
	for i := range events {
		events[i].Attempt++
	}
	slices.SortFunc(events, func(a, b event) int { return int(a.Seq - b.Seq) })
	return token, events, nil
}

// read runs one of the claim's SELECTs, cutting at budget bytes (size
// already taken) but taking at least one event when first is set. With
// givenBack set, a claim token on the first row is returned as old.
func (q *sinkQueue) read(query string, args map[string]any, budget, size int, first bool) (events []event, old string, _ int, err error) {
	stmt, err := q.ob.conn.Prepare(query)
	if err != nil {
		return nil, "", 0, err
	}
	defer func() {
		if rerr := stmt.Reset(); err == nil {
			err = rerr
		}
	}()
	for k, v := range q.named(args) {
		switch v := v.(type) {
		case string:
			stmt.SetText(k, v)
		case int:
			stmt.SetInt64(k, int64(v))
		case int64:
			stmt.SetInt64(k, v)
		}
	}
	for {
		row, err := stmt.Step()
		if err != nil || !row {
			return events, "", size, err
		}
		if stmt.ColumnCount() > 6 && len(events) == 0 && !stmt.ColumnIsNull(6) {
			return nil, stmt.ColumnText(6), size, nil
		}
		n := stmt.ColumnLen(3) + stmt.ColumnLen(1) + stmt.ColumnLen(2) + eventOverhead
		if (len(events) > 0 || !first) && size+n > budget {
			return events, "", size, nil
		}
		size += n
		events = append(events, scanEvent(stmt))
	}
}

// forEach runs query once per event, binding :seq, :sink and :claim.
func (q *sinkQueue) forEach(query, token string, events []event, args map[string]any) error {
	return q.ob.forEachSeq(query, token, events, q.named(args))
}

// ack settles delivered events: their rows go, and each event too once no
// sink waits for it.
func (q *sinkQueue) ack(token string, events []event) (err error) {
	if len(events) == 0 {
		return nil
	}
	defer q.ob.atomically()(&err)
	done := make([]int64, 0, len(events))
	err = sqlitex.Execute(q.ob.conn, sqAckSQL, &sqlitex.ExecOptions{
		Named:      q.named(map[string]any{":claim": token, ":seqs": seqsJSON(seqsOf(events))}),
		ResultFunc: func(stmt *sqlite.Stmt) error { done = append(done, stmt.ColumnInt64(0)); return nil },
	})
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if err := q.add(map[string]any{":delivered": len(done)}); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if err := q.ob.dropDone(done); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// add adds to the sink's totals (delivered, failed, dead, evicted).
func (q *sinkQueue) add(n map[string]any) error {
	args := map[string]any{":delivered": 0, ":failed": 0, ":dead": 0, ":evicted": 0}
	for k, v := range n {
		args[k] = v
	}
	return sqlitex.Execute(q.ob.conn, sqAddSQL, &sqlitex.ExecOptions{Named: q.named(args)})
}

func (q *sinkQueue) release(token string, events []event, at time.Time, counted bool, errMsg string) error {
	args := map[string]any{":counted": counted, ":max": maxAttempts, ":at": at.UnixMilli(), ":error": nil}
	if errMsg != "" {
		args[":error"] = errMsg
	}
	if err := q.forEach(sqReleaseSQL, token, events, args); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if counted || errMsg != "" {
		// failed counts every delivery an answer failed, a breaker's
		// probe and a paused one too (an uncounted release with an
		// error), not only those that use up an attempt: a sink that
		// stays down shows its failures growing. A release without an
		// error gives back events that were not sent (splitBatch).
		return q.add(map[string]any{":failed": len(events)})
	}
	return nil
}

func (q *sinkQueue) giveBack(token string, events []event) error {
	if err := q.forEach(sqGiveBackSQL, token, events, nil); err != nil {
		return fmt.Errorf("give back: %w", err)
	}
	return nil
}

func (q *sinkQueue) bury(token string, events []event, errMsg string) error {
	if err := q.forEach(sqDeadSQL, token, events, map[string]any{":error": errMsg}); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return q.add(map[string]any{":dead": len(events)})
}

// resetInflight is outbox.resetInflight for the secondary.
func (q *sinkQueue) resetInflight() error {
	err := sqlitex.Execute(q.ob.conn, sqResetSQL, &sqlitex.ExecOptions{Named: q.named(map[string]any{":max": maxAttempts})})
	if err != nil {
		return fmt.Errorf("reset inflight events: %w", err)
	}
	return nil
}

// nextAvailable is when the secondary's next event is ready: now when a
// fresh event waits, else its earliest retry.
func (q *sinkQueue) nextAvailable() (time.Time, bool, error) {
	now := q.ob.now()
	fresh, _, _, err := q.read(sqFreshSQL, map[string]any{":limit": 1}, math.MaxInt, 0, true)
	if err != nil || len(fresh) > 0 {
		return now, err == nil, err
	}
	var at time.Time
	var ok bool
	err = sqlitex.Execute(q.ob.conn, sqNextSQL, &sqlitex.ExecOptions{
		Named: q.named(nil),
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if !stmt.ColumnIsNull(0) {
				at, ok = time.UnixMilli(stmt.ColumnInt64(0)), true
			}
			return nil
		},
	})
	if limit := now.Add(maxWait); at.After(limit) {
		at = limit
	}
	return at, ok, err
}

func (q *sinkQueue) addRedactions(counts map[string]int64) error { return q.ob.addRedactions(counts) }
func (q *sinkQueue) immediate(fn func() error) error             { return q.ob.immediate(fn) }
func (q *sinkQueue) store() *outbox                              { return q.ob }

// setMeta stores the drainer's status under the sink's own keys.
func (q *sinkQueue) setMeta(kv map[string]string) error {
	m := make(map[string]string, len(kv))
	for k, v := range kv {
		m[sinkMetaKey(q.name, k)] = v
	}
	return q.ob.setMeta(m)
}

// sinkMetaKey is where a secondary's status key k lives in the meta table.
func sinkMetaKey(sink, k string) string { return "sink." + sink + "." + k }
