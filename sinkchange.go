package main

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Sinks added, removed and reordered (DESIGN.md, Destinations: adding or
// removing a sink takes a SIGHUP). A sink is its name: its progress goes
// with the name, whatever place its table takes in config.toml.
//
// The first sink keeps its progress in the events rows (outboxsinks.go),
// so the outbox records whose progress that is, under the meta key
// primary_sink. When the first sink of config.toml is another one (the
// first was removed, or another table was put before it), the progress
// moves (movePrimary): the old first sink's, if it stays, to a sinks row
// and deliveries rows of its own, as every sink beyond the first keeps
// it; the new first sink's from its own rows into the events rows. So a
// sink that stays never takes another's dead letters, pending events or
// gaps, nor loses its own retries; and an event that every configured
// sink has leaves the outbox.
//
// A sink added to a home that already delivers to a sink receives the
// events queued from the reload on; not the events the outbox happens to
// hold then, which are there for other sinks (delivered to the first and
// held for one that is behind, say) and would make what the new sink gets
// depend on how far behind the others were. The sinks of a home's first
// configuration (no sink was recorded yet: a new home, one that had no
// endpoint, one upgraded from a release before sinks, one rebuilt by a
// salvage that could not read the sinks' progress: salvagesinks.go)
// receive everything queued. Renaming a sink is removing it and
// adding another.

const (
	metaPrimarySink = "primary_sink"

	// hookDead is the condition on an events row that it is a dead letter
	// a hook handed over (raw, or refused at enqueue): it belongs to no
	// sink's progress and stays as it is.
	hookDead = `(raw = 1 OR (state = 2 AND attempts = 0))`

	// demoteSQL gives the old first sink :old deliveries rows for what it
	// has not done (pending, in flight: given back; dead), as a sink
	// beyond the first keeps them; its hwm is the largest seq (sinks row,
	// written before).
	demoteSQL = `INSERT INTO deliveries (seq, sink, state, attempts, available_at, claim, last_error)
SELECT seq, :old, CASE state WHEN 1 THEN 0 ELSE state END, attempts, CASE state WHEN 1 THEN 0 ELSE available_at END, NULL, last_error
FROM events WHERE state IN (0, 1, 2) AND NOT ` + hookDead + ` AND (sink IS NULL OR sink = :old)`

	// promoteDoneSQL, promoteFreshSQL and promoteRowsSQL write the new
	// first sink :new's progress (hwm :hwm, its deliveries rows) into the
	// events rows: done (state 3: gone once no other sink waits), not yet
	// tried, and as its rows say. A row in flight that the new sink is
	// to receive stays in flight under its claim: the batch the daemon
	// has claimed goes to the new first sink and is settled by it.
	promoteDoneSQL = `UPDATE events SET state = 3, claim = NULL WHERE NOT ` + hookDead + `
	AND ((sink IS NOT NULL AND sink != :new)
	OR (seq <= :hwm AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = events.seq AND d.sink = :new)))`
	promoteFreshSQL = `UPDATE events SET state = CASE state WHEN 1 THEN 1 ELSE 0 END,
	attempts = CASE state WHEN 1 THEN 1 ELSE 0 END, available_at = CASE state WHEN 1 THEN available_at ELSE 0 END,
	claim = CASE state WHEN 1 THEN claim END, last_error = NULL
WHERE seq > :hwm AND NOT ` + hookDead + ` AND (sink IS NULL OR sink = :new)`
	promoteRowsSQL = `UPDATE events SET (state, attempts, available_at, claim, last_error) = (
	SELECT CASE WHEN events.state = 1 AND d.state != 2 THEN 1 WHEN d.state = 1 THEN 0 ELSE d.state END,
		d.attempts,
		CASE WHEN events.state = 1 AND d.state != 2 THEN events.available_at WHEN d.state = 1 THEN 0 ELSE d.available_at END,
		CASE WHEN events.state = 1 AND d.state != 2 THEN events.claim END,
		d.last_error
	FROM deliveries d WHERE d.seq = events.seq AND d.sink = :new)
WHERE seq <= :hwm AND NOT ` + hookDead + ` AND EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = events.seq AND d.sink = :new)`
)

// recordedPrimary is the sink whose progress the events rows hold, as the
// outbox recorded it; "" when none was.
func (o *outbox) recordedPrimary() (string, error) {
	var name string
	err := sqlitex.Execute(o.conn, `SELECT value FROM meta WHERE key = ?`, &sqlitex.ExecOptions{
		Args:       []any{metaPrimarySink},
		ResultFunc: func(stmt *sqlite.Stmt) error { name = stmt.ColumnText(0); return nil },
	})
	return name, err
}

// sinkTotals are the totals status shows for one sink: the first sink's
// in the meta table, the others' in their sinks rows.
var sinkTotals = [...]struct{ meta, column string }{
	{metaDelivered, "delivered"}, {metaFailed, "failed"}, {metaBuried, "dead"},
}

// movePrimary moves the progress of the first sink from old to new, in
// the caller's transaction; stays says whether old is still configured.
// It reports whether the outbox delivered to a sink before.
func (o *outbox) movePrimary(old, new string, stays bool) error {
	top, err := o.maxSeq()
	if err != nil {
		return err
	}
	if stays {
		err := sqlitex.Execute(o.conn, `INSERT INTO sinks (name, hwm) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET hwm = excluded.hwm`,
			&sqlitex.ExecOptions{Args: []any{old, top}})
		if err == nil {
			err = sqlitex.Execute(o.conn, demoteSQL, &sqlitex.ExecOptions{Named: map[string]any{":old": old}})
		}
		for _, t := range sinkTotals {
			if err == nil {
				err = sqlitex.Execute(o.conn, `UPDATE sinks SET `+t.column+` = coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0) WHERE name = ?`,
					&sqlitex.ExecOptions{Args: []any{t.meta, old}})
			}
		}
		if err != nil {
			return fmt.Errorf("keep the progress of %q: %w", old, err)
		}
	}
	// The new first sink's own progress: its sinks row, or, for a sink
	// added now, the events queued from now on.
	hwm, found := top, false
	err = sqlitex.Execute(o.conn, `SELECT hwm FROM sinks WHERE name = ?`, &sqlitex.ExecOptions{
		Args:       []any{new},
		ResultFunc: func(stmt *sqlite.Stmt) error { hwm, found = stmt.ColumnInt64(0), true; return nil },
	})
	named := map[string]any{":new": new, ":hwm": hwm}
	for _, q := range []string{promoteDoneSQL, promoteFreshSQL, promoteRowsSQL} {
		if err == nil {
			err = sqlitex.Execute(o.conn, q, &sqlitex.ExecOptions{Named: named})
		}
	}
	for _, t := range sinkTotals {
		if err == nil {
			err = sqlitex.Execute(o.conn, `INSERT INTO meta (key, value) VALUES (:key,
	CAST(coalesce((SELECT `+t.column+` FROM sinks WHERE name = :new), 0) AS TEXT))
ON CONFLICT (key) DO UPDATE SET value = excluded.value`, &sqlitex.ExecOptions{Named: map[string]any{":key": t.meta, ":new": new}})
		}
	}
	if err == nil && found {
		err = sqlitex.Execute(o.conn, `DELETE FROM deliveries WHERE sink = ?`, &sqlitex.ExecOptions{Args: []any{new}})
		if err == nil {
			err = sqlitex.Execute(o.conn, `DELETE FROM sinks WHERE name = ?`, &sqlitex.ExecOptions{Args: []any{new}})
		}
	}
	if err != nil {
		return fmt.Errorf("move the progress of %q to the events rows: %w", new, err)
	}
	return nil
}

// notePrimary moves the first sink's progress when config.toml's first
// sink is not the one the outbox recorded (movePrimary), and records it.
// It reports whether the outbox delivered to some sink before: a sink
// added then receives the events queued from now on.
func (o *outbox) notePrimary(secondaries []string, hadSecondaries bool) (delivering bool, err error) {
	old, err := o.recordedPrimary()
	if err != nil || o.primary == "" {
		return old != "" || hadSecondaries, err
	}
	if old != "" && old != o.primary {
		stays := false
		for _, s := range secondaries {
			stays = stays || s == old
		}
		if err := o.movePrimary(old, o.primary, stays); err != nil {
			return false, err
		}
	}
	err = sqlitex.Execute(o.conn, salvageSetMetaSQL, &sqlitex.ExecOptions{Named: map[string]any{":key": metaPrimarySink, ":value": o.primary}})
	return old != "" || hadSecondaries, err
}
