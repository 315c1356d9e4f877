package main

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// A salvage carries over the progress of the sinks beyond the first (their
// sinks and deliveries rows, outboxsinks.go), as it carries the first
// sink's in the events rows it copies: without it, each would start over
// as in a first configuration and receive again every event it had
// acknowledged that the outbox still held for another sink.
//
// The copy numbers the events afresh, in the old order as far as the walk
// of the table goes, then in page order for what page scanning finds; and
// hooks queue events into the fresh outbox meanwhile, between the copied
// ones. So each copied row's old and new seq are noted in salvage_seqs, in
// the transaction that copies it (a salvage killed and resumed notes each
// once), and the progress is written in the transaction that ends the
// salvage (finish):
//
//   - a sink's hwm becomes the largest new seq of the events copied from
//     at or below its old hwm; its deliveries rows follow their events
//     to their new seqs, and go with them when they were lost (the corrupt
//     gap, which every sink receives, reports those);
//   - an event at or below that new hwm that is not such a copy (queued by
//     a hook during the salvage, or found by page scanning above the old
//     hwm) gets a deliveries row that makes it wait for the sink, ready
//     now, so that no sink misses it.
//
// When the old file's sinks or deliveries cannot be read whole, nothing is
// carried over and the fresh outbox is a first configuration (sinkchange.go):
// every sink receives everything it holds, some events twice, none lost.

const (
	salvageSeqsTableSQL = `CREATE TABLE IF NOT EXISTS salvage_seqs (old INTEGER PRIMARY KEY, new INTEGER NOT NULL UNIQUE) STRICT`
	salvageSeqNoteSQL   = `INSERT INTO salvage_seqs (old, new) VALUES (:old, :new) ON CONFLICT DO NOTHING`
	salvageSeqsDropSQL  = `DROP TABLE IF EXISTS salvage_seqs`

	salvageHasSinksSQL     = `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sinks', 'deliveries')`
	salvageOldSinksSQL     = `SELECT name, hwm, delivered, failed, dead, evicted FROM sinks`
	salvageOldDeliveriesQL = `SELECT seq, sink, state, attempts, available_at, claim, last_error FROM deliveries`
	salvageOldPrimarySQL   = `SELECT value FROM meta WHERE key = 'primary_sink'`

	salvageSinkHWMSQL = `SELECT coalesce(max(new), 0) FROM salvage_seqs WHERE old <= :hwm`
	salvageSinkRowSQL = `INSERT INTO sinks (name, hwm, delivered, failed, dead, evicted) VALUES (:sink, :hwm, :delivered, :failed, :dead, :evicted)
ON CONFLICT (name) DO UPDATE SET hwm = excluded.hwm, delivered = excluded.delivered, failed = excluded.failed,
	dead = excluded.dead, evicted = excluded.evicted`
	salvageDeliverySQL = `INSERT INTO deliveries (seq, sink, state, attempts, available_at, claim, last_error)
SELECT new, :sink, :state, :attempts, :available, :claim, :error FROM salvage_seqs WHERE old = :old
ON CONFLICT DO NOTHING`
	salvageWaitSQL = `INSERT INTO deliveries (seq, sink, state, attempts, available_at)
SELECT e.seq, :sink, 0, 0, e.created_at FROM events e WHERE e.seq <= :newhwm AND ` + forSecondary + `
	AND NOT EXISTS (SELECT 1 FROM salvage_seqs m WHERE m.new = e.seq AND m.old <= :hwm)
ON CONFLICT DO NOTHING`
)

// noteSeq notes that the row of old seq old is the fresh outbox's last
// insert, in the caller's transaction.
func (s *salvager) noteSeq(old int64) error {
	return sqlitex.Execute(s.to.conn, salvageSeqNoteSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":old": old, ":new": s.to.conn.LastInsertRowID()},
	})
}

// oldSink is a sinks row of the corrupt file.
type oldSink struct {
	name                                string
	hwm, delivered, failed, dead, evict int64
}

// oldDelivery is a deliveries row of the corrupt file.
type oldDelivery struct {
	seq                    int64
	sink                   string
	state, attempts, avail int64
	claim, lastError       any
}

// carrySinks writes the progress of the sinks beyond the first that the
// corrupt file held into the fresh outbox, in the caller's transaction. It
// reports how many sinks it carried over; readErr says why it carried
// none when the corrupt file could not give them whole.
func (s *salvager) carrySinks() (carried int, readErr, err error) {
	if s.from == nil {
		return 0, fmt.Errorf("the corrupt file cannot be opened"), nil
	}
	var tables int
	if err := sqlitex.ExecuteTransient(s.from, salvageHasSinksSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { tables = stmt.ColumnInt(0); return nil },
	}); err != nil || tables < 2 {
		return 0, err, nil // an outbox before version 4 has no sinks beyond the first
	}
	var sinks []oldSink
	if err := sqlitex.ExecuteTransient(s.from, salvageOldSinksSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			sinks = append(sinks, oldSink{stmt.ColumnText(0), stmt.ColumnInt64(1), stmt.ColumnInt64(2),
				stmt.ColumnInt64(3), stmt.ColumnInt64(4), stmt.ColumnInt64(5)})
			return nil
		},
	}); err != nil {
		return 0, err, nil
	}
	var rows []oldDelivery
	if err := sqlitex.ExecuteTransient(s.from, salvageOldDeliveriesQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			d := oldDelivery{seq: stmt.ColumnInt64(0), sink: stmt.ColumnText(1), state: stmt.ColumnInt64(2),
				attempts: stmt.ColumnInt64(3), avail: stmt.ColumnInt64(4)}
			if stmt.ColumnType(5) != sqlite.TypeNull {
				d.claim = stmt.ColumnText(5)
			}
			if stmt.ColumnType(6) != sqlite.TypeNull {
				d.lastError = stmt.ColumnText(6)
			}
			rows = append(rows, d)
			return nil
		},
	}); err != nil {
		return 0, err, nil
	}
	var primary string
	_ = sqlitex.ExecuteTransient(s.from, salvageOldPrimarySQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { primary = stmt.ColumnText(0); return nil },
	})
	for _, sk := range sinks {
		var newHWM int64
		err := sqlitex.Execute(s.to.conn, salvageSinkHWMSQL, &sqlitex.ExecOptions{
			Named:      map[string]any{":hwm": sk.hwm},
			ResultFunc: func(stmt *sqlite.Stmt) error { newHWM = stmt.ColumnInt64(0); return nil },
		})
		if err == nil {
			err = sqlitex.Execute(s.to.conn, salvageSinkRowSQL, &sqlitex.ExecOptions{Named: map[string]any{
				":sink": sk.name, ":hwm": newHWM, ":delivered": sk.delivered, ":failed": sk.failed, ":dead": sk.dead, ":evicted": sk.evict}})
		}
		if err == nil {
			err = sqlitex.Execute(s.to.conn, salvageWaitSQL, &sqlitex.ExecOptions{
				Named: map[string]any{":sink": sk.name, ":newhwm": newHWM, ":hwm": sk.hwm}})
		}
		if err != nil {
			return carried, nil, fmt.Errorf("sink %q: %w", sk.name, err)
		}
		carried++
	}
	for _, d := range rows {
		err := sqlitex.Execute(s.to.conn, salvageDeliverySQL, &sqlitex.ExecOptions{Named: map[string]any{
			":sink": d.sink, ":state": d.state, ":attempts": d.attempts, ":available": d.avail,
			":claim": d.claim, ":error": d.lastError, ":old": d.seq}})
		if err != nil {
			return carried, nil, fmt.Errorf("sink %q: %w", d.sink, err)
		}
	}
	if primary != "" {
		// The first sink's progress is in the events rows copied: which
		// sink's it is goes with them (notePrimary).
		err := sqlitex.Execute(s.to.conn, salvageSetMetaSQL, &sqlitex.ExecOptions{
			Named: map[string]any{":key": metaPrimarySink, ":value": primary}})
		if err != nil {
			return carried, nil, err
		}
	}
	return carried, nil, nil
}
