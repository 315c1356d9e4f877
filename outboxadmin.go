package main

import (
	"fmt"
	"strconv"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// countsSQL counts the events without counting rows. SQLite gives a new
// row the rowid one above the largest in the table (seq has no
// AUTOINCREMENT, and no statement sets it), so as long as rows are only
// appended, the number of events is max(seq) minus a constant, seq_offset;
// every statement that deletes events moves seq_offset in the same
// transaction (rebase). enqueue thus counts its event for free: the hook
// path writes nothing more. inflight (a batch) and dead (bounded by the
// dead letters' limit) are counted on events_by_state, and pending is
// what remains: status reads a few index pages, whatever is queued. (A
// count by scan, and a tally kept by triggers, were measured and rejected:
// BENCHMARKS.md.)
const countsSQL = `SELECT
	(SELECT coalesce(max(seq), 0) FROM events) - (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'seq_offset'),
	(SELECT count(*) FROM events WHERE state = 1),
	(SELECT count(*) FROM events WHERE state = 2),
	(SELECT count(*) FROM events WHERE state = 3)`

// oldestPendingSQL finds the first pending event in queue order: a walk of
// the table from its start that stops at the first pending row, past only
// dead letters and a batch in flight. Without NOT INDEXED SQLite would read
// every pending entry of events_by_state and sort them.
const oldestPendingSQL = `SELECT created_at FROM events NOT INDEXED WHERE state = 0 ORDER BY seq LIMIT 1`

const (
	maxSeqSQL       = `SELECT coalesce(max(seq), 0) FROM events`
	setSeqOffsetSQL = `UPDATE meta SET value = CAST(CAST(value AS INTEGER) + :d AS TEXT) WHERE key = 'seq_offset'`
)

// maxSeq is the largest seq in the outbox, 0 when it is empty.
func (o *outbox) maxSeq() (int64, error) {
	var m int64
	err := sqlitex.Execute(o.conn, maxSeqSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { m = stmt.ColumnInt64(0); return nil },
	})
	return m, err
}

// rebase keeps countsSQL right after n events were deleted in the current
// write transaction: the count fell by n, and max(seq) from maxBefore (the
// largest seq before the deletes, or at least the largest deleted: when the
// largest row went, that is it) to what it is now. The next append gets
// max(seq)+1, which rebase accounts for.
func (o *outbox) rebase(maxBefore, n int64) error {
	if n == 0 {
		return nil
	}
	after, err := o.maxSeq()
	if err != nil {
		return err
	}
	// count = max − offset, before and after: offset' = offset + (after −
	// before) + n.
	d := after - max(maxBefore, after) + n
	if err := sqlitex.Execute(o.conn, setSeqOffsetSQL, &sqlitex.ExecOptions{Named: map[string]any{":d": d}}); err != nil {
		return err
	}
	// The next append reuses the seqs above after: no sink may have moved
	// past them (outboxsinks.go).
	return sqlitex.Execute(o.conn, clampHWMSQL, &sqlitex.ExecOptions{Named: map[string]any{":max": after}})
}

// clampHWMSQL brings a secondary's hwm back to the largest seq in the
// outbox: every event above it is gone, and SQLite gives the next row the
// seq one above the largest, which must be fresh for every sink.
const clampHWMSQL = `UPDATE sinks SET hwm = :max WHERE hwm > :max`

// counts is how many events the outbox holds in each state.
type counts struct {
	Pending       int64     `json:"pending"`
	Inflight      int64     `json:"inflight"`
	Dead          int64     `json:"dead"`
	OldestPending time.Time `json:"-"`
}

// counts counts the events in each state (countsSQL), and finds the
// creation time of the oldest pending event in queue order (the first
// accepted of those still waiting).
func (o *outbox) counts() (counts, error) {
	var c counts
	err := sqlitex.Execute(o.conn, countsSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			c.Inflight, c.Dead = stmt.ColumnInt64(1), stmt.ColumnInt64(2)
			c.Pending = stmt.ColumnInt64(0) - c.Inflight - c.Dead - stmt.ColumnInt64(3)
			return nil
		},
	})
	if err == nil && c.Pending > 0 {
		err = sqlitex.Execute(o.conn, oldestPendingSQL, &sqlitex.ExecOptions{
			ResultFunc: func(stmt *sqlite.Stmt) error { c.OldestPending = time.UnixMilli(stmt.ColumnInt64(0)); return nil },
		})
	}
	if err != nil {
		return counts{}, fmt.Errorf("count events: %w", err)
	}
	return c, nil
}

const (
	setMetaSQL = `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	metaSQL = `SELECT key, value FROM meta`
)

// setMeta stores daemon state that other commands show (the last delivery,
// the breaker, a pause) in the database, where status can read it.
func (o *outbox) setMeta(kv map[string]string) (err error) {
	defer sqlitex.Save(o.conn)(&err)
	for k, v := range kv {
		err := sqlitex.Execute(o.conn, setMetaSQL, &sqlitex.ExecOptions{Args: []any{k, v}})
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *outbox) meta() (map[string]string, error) {
	m := map[string]string{}
	err := sqlitex.Execute(o.conn, metaSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { m[stmt.ColumnText(0)] = stmt.ColumnText(1); return nil },
	})
	return m, err
}

// vacuum gives free pages back to the file system, a bounded number at a
// time, so that a drained outbox does not keep its peak size for ever. It
// reports how many pages it freed and how many free pages are left, so that
// the daemon can go on in later idle moments until none are.
func (o *outbox) vacuum(pages int) (freed, left int64, err error) {
	before, err := o.pragmaInt("freelist_count")
	if err != nil || before == 0 {
		return 0, before, err
	}
	if err := sqlitex.ExecuteTransient(o.conn, "PRAGMA incremental_vacuum("+strconv.Itoa(pages)+")", nil); err != nil {
		return 0, before, err
	}
	left, err = o.pragmaInt("freelist_count")
	return before - left, left, err
}

// truncateWAL checkpoints the WAL and truncates it to nothing. It waits, up
// to the busy timeout, for an enqueue that is writing; the daemon calls it
// once per shrink, in an idle moment.
func (o *outbox) truncateWAL() error {
	return sqlitex.ExecuteTransient(o.conn, "PRAGMA wal_checkpoint(TRUNCATE)", nil)
}

func (o *outbox) pragmaInt(name string) (int64, error) {
	var v int64
	err := sqlitex.ExecuteTransient(o.conn, "PRAGMA "+name, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { v = stmt.ColumnInt64(0); return nil },
	})
	return v, err
}

// ensureAutoVacuum turns on incremental auto_vacuum in an outbox made by a
// version that asked for it too late (after WAL mode, when it is ignored).
// That takes one VACUUM, which rewrites the file; the daemon does it once at
// start, never enqueue.
func (o *outbox) ensureAutoVacuum() (converted bool, err error) {
	mode, err := o.pragmaInt("auto_vacuum")
	if err != nil || mode == 2 {
		return false, err
	}
	if err := sqlitex.ExecuteTransient(o.conn, "PRAGMA auto_vacuum = INCREMENTAL", nil); err != nil {
		return false, err
	}
	if err := sqlitex.ExecuteTransient(o.conn, "VACUUM", nil); err != nil {
		return false, err
	}
	return true, nil
}

// deadLetter is a dead event as 'outbox list' shows it.
type deadLetter struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
	Sink      string    `json:"sink,omitempty"` // a sink beyond the first whose dead letter it is
}

const deadLettersSQL = `SELECT id, kind, attempts, coalesce(last_error, ''), created_at
FROM events WHERE state = 2 ORDER BY seq LIMIT :limit`

func (o *outbox) deadLetters(limit int) ([]deadLetter, error) {
	var out []deadLetter
	err := sqlitex.Execute(o.conn, deadLettersSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":limit": limit},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			out = append(out, deadLetter{
				ID: stmt.ColumnText(0), Kind: stmt.ColumnText(1), Attempts: stmt.ColumnInt(2),
				LastError: stmt.ColumnText(3), CreatedAt: time.UnixMilli(stmt.ColumnInt64(4)).UTC(),
			})
			return nil
		},
	})
	return out, err
}

const kindCountsSQL = `SELECT kind, state, count(*) FROM events GROUP BY kind, state ORDER BY kind, state`

// kindCounts is how many events of each kind are in each state.
func (o *outbox) kindCounts() (map[string]*counts, error) {
	out := map[string]*counts{}
	err := sqlitex.Execute(o.conn, kindCountsSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			c := out[stmt.ColumnText(0)]
			if c == nil {
				c = &counts{}
				out[stmt.ColumnText(0)] = c
			}
			switch stmt.ColumnInt(1) {
			case statePending:
				c.Pending = stmt.ColumnInt64(2)
			case stateInflight:
				c.Inflight = stmt.ColumnInt64(2)
			case stateDead:
				c.Dead = stmt.ColumnInt64(2)
			}
			return nil
		},
	})
	return out, err
}

// retryDeadSQL leaves raw dead letters dead: their bytes are not JSON and
// would break the batch they went out in (the CHECK on raw refuses it too).
// It clears the claim token a buried batch may have kept (older releases
// kept it): claim would take the event for a batch given back.
const retryDeadSQL = `UPDATE events SET state = 0, attempts = 0, available_at = :now, claim = NULL
WHERE state = 2 AND raw = 0 AND (:all OR id = :id)`

const rawDeadSQL = `SELECT id FROM events WHERE state = 2 AND raw = 1 AND (:all OR id = :id) ORDER BY seq`

// wakeWaitingSQL makes pending events that wait for a retry ready now. It
// keeps their attempts: they are not dead, only early.
const wakeWaitingSQL = `UPDATE events SET available_at = :now
WHERE state = 0 AND available_at > :now AND (:all OR id = :id)`

// retryDead returns dead letters to pending with their attempts reset: all
// of them, or those with the given ids. It reports how many it moved, and
// the ids of the raw dead letters it left dead.
func (o *outbox) retryDead(all bool, ids []string) (n int, raw []string, err error) {
	defer sqlitex.Save(o.conn)(&err)
	if n, err = o.updateEach(retryDeadSQL, all, ids); err != nil {
		return 0, nil, err
	}
	if all {
		ids = []string{""}
	}
	for _, id := range ids {
		err = sqlitex.Execute(o.conn, rawDeadSQL, &sqlitex.ExecOptions{
			Named:      map[string]any{":all": all, ":id": id},
			ResultFunc: func(stmt *sqlite.Stmt) error { raw = append(raw, stmt.ColumnText(0)); return nil },
		})
		if err != nil {
			return 0, nil, err
		}
	}
	return n, raw, nil
}

// wakeWaiting makes pending events that wait for a retry (their backoff, a
// Retry-After, or a time a stepped clock left far ahead) ready now: all of
// them, or those with the given ids. It reports how many it moved.
func (o *outbox) wakeWaiting(all bool, ids []string) (n int, err error) {
	return o.updateEach(wakeWaitingSQL, all, ids)
}

// updateEach runs query, which takes :now, :all and :id, once for all
// events or once per id, in one savepoint, and reports the rows it changed.
func (o *outbox) updateEach(query string, all bool, ids []string) (n int, err error) {
	defer sqlitex.Save(o.conn)(&err)
	if all {
		ids = []string{""}
	}
	for _, id := range ids {
		err := sqlitex.Execute(o.conn, query, &sqlitex.ExecOptions{
			Named: map[string]any{":now": o.now().UnixMilli(), ":all": all, ":id": id},
		})
		if err != nil {
			return 0, err
		}
		n += o.conn.Changes()
	}
	return n, nil
}

// storedEvent is one event as 'outbox show' prints it.
type storedEvent struct {
	ID        string
	Kind      string
	Payload   []byte
	CreatedAt time.Time
	State     int
	Attempts  int
	LastError string
	Raw       bool
}

const eventByIDSQL = `SELECT id, kind, payload, created_at, state, attempts, coalesce(last_error, ''), raw
FROM events WHERE id = :id`

// event returns the event with the given id, and false when there is none.
func (o *outbox) event(id string) (storedEvent, bool, error) {
	var e storedEvent
	found := false
	err := sqlitex.Execute(o.conn, eventByIDSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":id": id},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			found = true
			e = storedEvent{
				ID: stmt.ColumnText(0), Kind: stmt.ColumnText(1), Payload: make([]byte, stmt.ColumnLen(2)),
				CreatedAt: time.UnixMilli(stmt.ColumnInt64(3)).UTC(), State: stmt.ColumnInt(4),
				Attempts: stmt.ColumnInt(5), LastError: stmt.ColumnText(6), Raw: stmt.ColumnBool(7),
			}
			stmt.ColumnBytes(2, e.Payload)
			return nil
		},
	})
	return e, found, err
}

const eventExistsSQL = `SELECT 1 FROM events WHERE id = :id`

// missing returns those of ids that name no event in the outbox, in order.
func (o *outbox) missing(ids []string) ([]string, error) {
	var none []string
	for _, id := range ids {
		found := false
		err := sqlitex.Execute(o.conn, eventExistsSQL, &sqlitex.ExecOptions{
			Named:      map[string]any{":id": id},
			ResultFunc: func(*sqlite.Stmt) error { found = true; return nil },
		})
		if err != nil {
			return nil, err
		}
		if !found {
			none = append(none, id)
		}
	}
	return none, nil
}

const purgeDeadSQL = `DELETE FROM events WHERE state = 2`

// keepDeadSQL turns the primary's dead letters that another sink may still
// take (not a hook's own dead letter: forSecondary) into events the
// primary is done with.
const keepDeadSQL = `UPDATE events SET state = 3, claim = NULL WHERE state = 2 AND raw = 0 AND attempts > 0`

// purgeDead deletes every dead letter and reports how many.
func (o *outbox) purgeDead() (n int, err error) {
	err = o.immediate(func() error {
		top, err := o.maxSeq()
		if err != nil {
			return err
		}
		sec, err := o.hasSecondaries()
		if err != nil {
			return err
		}
		kept := 0
		if sec {
			// Dead for the primary, but another sink may still take
			// it: it stays, done for the primary (outboxsinks.go).
			if err := sqlitex.Execute(o.conn, keepDeadSQL, nil); err != nil {
				return err
			}
			kept = o.conn.Changes()
		}
		if err := sqlitex.Execute(o.conn, purgeDeadSQL, nil); err != nil {
			return err
		}
		n = o.conn.Changes()
		if err := o.rebase(top, int64(n)); err != nil {
			return err
		}
		n += kept
		if sec {
			return o.sweepDone()
		}
		return nil
	})
	return n, err
}

// addRedactionsSQL adds to a rule's count in the meta table, whose values
// are text.
const addRedactionsSQL = `INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)`

// addRedactions adds what a delivered batch had redacted to the counts
// status shows.
func (o *outbox) addRedactions(counts map[string]int64) error {
	for rule, n := range counts {
		if err := sqlitex.Execute(o.conn, addRedactionsSQL, &sqlitex.ExecOptions{Args: []any{redactedKey + rule, fmt.Sprint(n)}}); err != nil {
			return fmt.Errorf("count redactions: %w", err)
		}
	}
	return nil
}
