package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// maxAttempts is how many counted delivery attempts an event gets before it
// becomes a dead letter.
const maxAttempts = 20

// readySQL lists the next ready events in queue order, walking
// events_by_state. claim reads them, cuts the batch at the byte budget
// (counting each event as it will be encoded: payload, id, kind and
// eventOverhead) and marks each one with markSQL, all in one write
// transaction. A claim token on the first row, when that row waits at
// available_at 0, marks a batch given back unacknowledged, which goes out
// again whole (reclaimBatchSQL). A token anywhere else is left from a
// claim that ended otherwise (a dead letter sent again by 'outbox retry',
// in releases that kept its token): readySQL does not name it, so that it
// cannot make a claim stop at a batch it cannot claim again, which once
// stalled delivery for good.
//
// The limit is CAST: SQLite reads a bare :limit in a LIMIT while planning,
// and then expires the statement whenever it is bound again, so that it
// would plan it anew on every call. (What this SELECT replaced, and what
// that cost, is in BENCHMARKS.md.)
const readySQL = `SELECT seq, id, kind, payload, created_at, attempts, CASE WHEN available_at = 0 THEN claim END, traceparent FROM events
WHERE state = 0 AND available_at <= :now
ORDER BY available_at, seq LIMIT CAST(:limit AS INTEGER)`

// capWaitSQL brings forward a pending event whose retry time lies more than
// maxWait ahead (the clock stepped back since it was written, or a bug wrote
// it) to maxWait from now. claim runs it first, in the same transaction; on
// events_by_state it costs one index probe when there is nothing to cap.
const capWaitSQL = `UPDATE events SET available_at = :cap WHERE state = 0 AND available_at > :cap`

const markSQL = `UPDATE events SET state = 1, claim = :claim, available_at = :lease, attempts = attempts + 1
WHERE seq = :seq`

// reclaimSQL and resetInflightSQL return unacknowledged inflight events to
// pending. They keep the claim token and set available_at to 0, which no
// event enqueued since 1970 has: the batch goes to the front of the queue
// and the next claim sends exactly that set again, so the receiver gets the
// same idempotency key and can deduplicate. A fresh claim would mix the
// batch with newer events and give every event in it a new key.
//
// A batch that was in flight when the daemon died maxAttempts times is not
// put back: it is likely what kills the daemon, and at the head of the
// queue it would block everything behind it. It becomes a dead letter, and
// loses its claim token: 'outbox retry' sends it as new events, not as a
// batch given back (see claim).
const reclaimSQL = `UPDATE events SET ` + giveBackOrBury + `
WHERE state = 1 AND available_at <= :now`

const resetInflightSQL = `UPDATE events SET ` + giveBackOrBury + ` WHERE state = 1`

const giveBackOrBury = `state = CASE WHEN attempts >= :max THEN 2 ELSE 0 END,
	available_at = 0,
	claim = CASE WHEN attempts >= :max THEN NULL ELSE claim END,
	last_error = CASE WHEN attempts >= :max
		THEN 'in flight when the daemon stopped without an answer, ' || attempts || ' times'
		ELSE last_error END`

// reclaimBatchSQL claims again, whole, a batch that reclaimSQL,
// resetInflightSQL or giveBackSQL returned to the head of the queue.
const reclaimBatchSQL = `UPDATE events
SET state = 1, claim = :claim, available_at = :lease, attempts = attempts + 1
WHERE state = 0 AND available_at = 0 AND claim = :old
RETURNING seq, id, kind, payload, created_at, attempts, traceparent`

// giveBackSQL returns a claimed event untried (the daemon is stopping and
// its request was cut short) the way resetInflightSQL does, and gives the
// attempt back.
const giveBackSQL = `UPDATE events SET state = 0, attempts = attempts - 1, available_at = 0
WHERE seq = :seq AND claim = :claim`

const ackSQL = `DELETE FROM events WHERE seq = :seq AND claim = :claim`

// ackDoneSQL is ackSQL while other sinks have progress in the outbox: the
// row stays, done for the primary, until they are done with it too
// (outboxsinks.go).
//
// OR FAIL: SQLite keeps a statement journal for a statement that writes
// many rows and may abort on a constraint (the CHECK on raw), a copy of
// every page it changes (a temporary file past 64 KiB), so as to undo the
// statement alone. None fails here, and an error rolls back the
// settlement's whole transaction anyway.
const ackDoneSQL = `UPDATE OR FAIL events SET state = 3, claim = NULL
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND claim = :claim RETURNING seq`

// releaseSQL returns a claimed event to pending. An uncounted release gives
// the attempt back; a counted one dead-letters the event once it has had
// maxAttempts.
const releaseSQL = `UPDATE events SET
	state = CASE WHEN :counted AND attempts >= :max THEN 2 ELSE 0 END,
	attempts = attempts - (1 - :counted),
	available_at = :at,
	claim = NULL,
	last_error = coalesce(:error, last_error)
WHERE seq = :seq AND claim = :claim`

const deadSQL = `UPDATE events SET state = 2, claim = NULL, last_error = :error
WHERE seq = :seq AND claim = :claim`

const nextAvailableSQL = `SELECT min(available_at) FROM events WHERE state = 0`

// newToken returns a random claim token.
func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// claim marks up to limit ready events (at most budget bytes once encoded,
// but at least one) inflight under a new claim token, with a lease that ends after
// lease. Events come back in queue order.
func (o *outbox) claim(limit, budget int, lease time.Duration) (token string, events []event, err error) {
	now := o.now()
	if o.shared {
		// Other sinks' drainers claim at the same time: a claim that
		// finds nothing takes no write lock they would have to wait for
		// (SQLite's busy wait sleeps in steps of milliseconds).
		if ok, err := o.anyWork(anyWorkSQL, nil, now); err != nil || !ok {
			return "", nil, err
		}
	}
	token = newToken()
	end, err := o.begin()
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	defer end(&err)
	err = sqlitex.Execute(o.conn, reclaimSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":now": now.UnixMilli(), ":max": maxAttempts},
	})
	if err != nil {
		return "", nil, fmt.Errorf("reclaim: %w", err)
	}
	err = sqlitex.Execute(o.conn, capWaitSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":cap": now.Add(maxWait).UnixMilli()},
	})
	if err != nil {
		return "", nil, fmt.Errorf("cap waits: %w", err)
	}
	events, old, err := o.ready(now, limit, budget)
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	if old != "" {
		// A batch given back goes out again whole, whatever limit and
		// budget say: they held when it was first claimed. readySQL
		// names it only where reclaimBatchSQL finds it (pending, at
		// available_at 0), so this claims at least its first event.
		events, err = o.reclaimBatch(token, old, now.Add(lease))
		if err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
		slices.SortFunc(events, func(a, b event) int { return int(a.Seq - b.Seq) })
		return token, events, nil
	}
	mark, err := o.conn.Prepare(markSQL)
	if err != nil {
		return "", nil, fmt.Errorf("claim: %w", err)
	}
	mark.SetText(":claim", token)
	mark.SetInt64(":lease", now.Add(lease).UnixMilli())
	for _, e := range events {
		mark.SetInt64(":seq", e.Seq)
		_, err := mark.Step()
		if rerr := mark.Reset(); err == nil {
			err = rerr
		}
		if err != nil {
			return "", nil, fmt.Errorf("claim: %w", err)
		}
	}
	slices.SortFunc(events, func(a, b event) int { return int(a.Seq - b.Seq) })
	return token, events, nil
}

// anyWorkSQL says whether a claim has anything to do: a pending event
// ready, one whose wait capWaitSQL cuts, or a lease that ended. Three
// probes of events_by_state.
const anyWorkSQL = `SELECT EXISTS (SELECT 1 FROM events WHERE state = 0 AND available_at <= :now)
	OR EXISTS (SELECT 1 FROM events WHERE state = 0 AND available_at > :cap)
	OR EXISTS (SELECT 1 FROM events WHERE state = 1 AND available_at <= :now)`

// anyWork runs query (anyWorkSQL or sqAnyWorkSQL) with :now, :cap and
// args, outside any write transaction.
func (o *outbox) anyWork(query string, args map[string]any, now time.Time) (bool, error) {
	named := map[string]any{":now": now.UnixMilli(), ":cap": now.Add(maxWait).UnixMilli()}
	maps.Copy(named, args)
	var yes bool
	err := sqlitex.Execute(o.conn, query, &sqlitex.ExecOptions{
		Named:      named,
		ResultFunc: func(stmt *sqlite.Stmt) error { yes = stmt.ColumnBool(0); return nil },
	})
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	return yes, nil
}

// ready reads the next ready events for claim (readySQL), up to limit
// events and budget bytes. old is the claim token of a batch given back
// when one is at the head of the queue; events is empty then.
func (o *outbox) ready(now time.Time, limit, budget int) (events []event, old string, err error) {
	ready, err := o.conn.Prepare(readySQL)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if rerr := ready.Reset(); err == nil {
			err = rerr
		}
	}()
	ready.SetInt64(":now", now.UnixMilli())
	ready.SetInt64(":limit", int64(limit))
	size := 0
	for {
		row, err := ready.Step()
		if err != nil || !row {
			return events, "", err
		}
		if len(events) == 0 && !ready.ColumnIsNull(6) {
			return nil, ready.ColumnText(6), nil
		}
		// The first event always goes, so that one large event still goes
		// out alone; after it, the batch ends at the byte budget.
		n := ready.ColumnLen(3) + ready.ColumnLen(1) + ready.ColumnLen(2) + eventOverhead
		if len(events) > 0 && size+n > budget {
			return events, "", nil
		}
		size += n
		e := scanEvent(ready)
		e.Attempt++ // markSQL counts this attempt.
		events = append(events, e)
	}
}

// scanEvent reads an event from a row of seq, id, kind, payload,
// created_at, attempts, as readySQL and reclaimBatchSQL return them, and
// traceparent, their last column.
func scanEvent(stmt *sqlite.Stmt) event {
	p := make([]byte, stmt.ColumnLen(3))
	stmt.ColumnBytes(3, p)
	return event{
		Traceparent: stmt.ColumnText(stmt.ColumnCount() - 1),
		Seq:         stmt.ColumnInt64(0),
		ID:          stmt.ColumnText(1),
		Kind:        stmt.ColumnText(2),
		Payload:     p,
		CreatedAt:   time.UnixMilli(stmt.ColumnInt64(4)).UTC(),
		Attempt:     stmt.ColumnInt(5),
	}
}

// reclaimBatch claims again the events of a batch given back under token
// old, as they were.
func (o *outbox) reclaimBatch(token, old string, lease time.Time) ([]event, error) {
	var events []event
	err := sqlitex.Execute(o.conn, reclaimBatchSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":claim": token, ":lease": lease.UnixMilli(), ":old": old},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			events = append(events, scanEvent(stmt))
			return nil
		},
	})
	return events, err
}

// forEachSeq runs query once per event as one unit (atomically), binding
// :seq and :claim and whatever named arguments args holds.
func (o *outbox) forEachSeq(query, token string, events []event, args map[string]any) (err error) {
	if len(events) == 0 {
		return nil
	}
	defer o.atomically()(&err)
	named := map[string]any{":claim": token}
	for k, v := range args {
		named[k] = v
	}
	for _, e := range events {
		named[":seq"] = e.Seq
		if err := sqlitex.Execute(o.conn, query, &sqlitex.ExecOptions{Named: named}); err != nil {
			return err
		}
	}
	return nil
}

// ack deletes delivered events. The claim token guards against a late ack
// from an expired claim deleting a row that was claimed again.
//
// The daemon acks inside its settlement's write transaction, so no enqueue
// commits between the deletes and the rebase.
func (o *outbox) ack(token string, events []event) (err error) {
	if len(events) == 0 {
		return nil
	}
	defer o.atomically()(&err)
	sec, err := o.hasSecondaries()
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if sec {
		return o.ackKeeping(token, events)
	}
	stmt, err := o.conn.Prepare(ackSQL)
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	var n, top int64
	stmt.SetText(":claim", token)
	for _, e := range events {
		stmt.SetInt64(":seq", e.Seq)
		_, err := stmt.Step()
		if rerr := stmt.Reset(); err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		if o.conn.Changes() > 0 {
			n, top = n+1, max(top, e.Seq)
		}
	}
	if err := o.rebase(top, n); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return o.addCount(metaDelivered, n)
}

// The first sink's totals in the meta table, as 'status --metrics' shows
// them (the others' are in their sinks rows).
const (
	metaDelivered = "sink_delivered"
	metaFailed    = "sink_failed"
	metaBuried    = "sink_dead_lettered"
)

// addCount adds n to one of the first sink's totals.
func (o *outbox) addCount(key string, n int64) error {
	if n == 0 {
		return nil
	}
	err := sqlitex.Execute(o.conn, addMetaSQL, &sqlitex.ExecOptions{Named: map[string]any{":key": key, ":n": n}})
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	return nil
}

// ackKeeping is ack while other sinks have progress: each event is marked
// done for the primary and goes only once they are done with it.
func (o *outbox) ackKeeping(token string, events []event) error {
	done := make([]int64, 0, len(events))
	err := sqlitex.Execute(o.conn, ackDoneSQL, &sqlitex.ExecOptions{
		Named:      map[string]any{":claim": token, ":seqs": seqsJSON(seqsOf(events))},
		ResultFunc: func(stmt *sqlite.Stmt) error { done = append(done, stmt.ColumnInt64(0)); return nil },
	})
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if err := o.dropDone(done); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return o.addCount(metaDelivered, int64(len(done)))
}

// release returns claimed events to pending, available again at at. A
// counted release keeps the attempt and dead-letters events that have had
// maxAttempts; an uncounted one (the endpoint was never really tried, or
// refused us for a reason that is not the events') gives it back. An empty
// errMsg keeps the previous error.
func (o *outbox) release(token string, events []event, at time.Time, counted bool, errMsg string) error {
	args := map[string]any{
		":counted": counted,
		":max":     maxAttempts,
		":at":      at.UnixMilli(),
		":error":   nil,
	}
	if errMsg != "" {
		args[":error"] = errMsg
	}
	if err := o.forEachSeq(releaseSQL, token, events, args); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if counted || errMsg != "" {
		// failed counts every delivery an answer failed, as sinkQueue.release.
		return o.addCount(metaFailed, int64(len(events)))
	}
	return nil
}

// store is the outbox itself: the first sink's queue is its events rows.
func (o *outbox) store() *outbox { return o }

// giveBack returns claimed events untried, to be sent again as the same
// batch: see giveBackSQL.
func (o *outbox) giveBack(token string, events []event) error {
	if err := o.forEachSeq(giveBackSQL, token, events, nil); err != nil {
		return fmt.Errorf("give back: %w", err)
	}
	return nil
}

// bury dead-letters claimed events with errMsg as their last error.
func (o *outbox) bury(token string, events []event, errMsg string) error {
	if err := o.forEachSeq(deadSQL, token, events, map[string]any{":error": errMsg}); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return o.addCount(metaBuried, int64(len(events)))
}

// resetInflight returns every inflight event to pending. The daemon calls it
// at start, holding the lock: whatever a previous instance had in flight was
// never acknowledged and must be sent again.
func (o *outbox) resetInflight() error {
	err := sqlitex.Execute(o.conn, resetInflightSQL, &sqlitex.ExecOptions{Named: map[string]any{":max": maxAttempts}})
	if err != nil {
		return fmt.Errorf("reset inflight events: %w", err)
	}
	return nil
}

// nextAvailable is the earliest time a pending event becomes ready, and
// false when nothing is pending. It is never more than maxWait from now,
// whatever the outbox holds: see capWaitSQL.
func (o *outbox) nextAvailable() (time.Time, bool, error) {
	var at time.Time
	var ok bool
	err := sqlitex.Execute(o.conn, nextAvailableSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if !stmt.ColumnIsNull(0) {
				at, ok = time.UnixMilli(stmt.ColumnInt64(0)), true
			}
			return nil
		},
	})
	if limit := o.now().Add(maxWait); at.After(limit) {
		at = limit
	}
	return at, ok, err
}
