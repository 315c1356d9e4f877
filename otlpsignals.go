package main

import (
	"fmt"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Progress per signal. An OTLP sink that sends logs and traces posts a
// batch's log records to /v1/logs, then its spans to /v1/traces. When the
// logs are acknowledged and the traces are not (a 503, say), the batch is
// retried as a whole, but its log records must not go again: the backend
// has them. So the sink remembers the events whose log records were
// acknowledged while their batch was not delivered, and a retry posts the
// log records of the others alone (its spans are built again, the same
// way). The record is kept in the outbox, in the spans table (a row whose
// span_id is logsAckedPrefix and the event id, state entryLogsAcked), and
// written in the transaction that settles the batch (takeState), so that
// the next daemon knows it too; the row goes when the event is delivered
// whole. A daemon that dies after the acknowledgement and before the
// settlement sends the records again, as it does any batch it had not
// settled: at least once, never lost.

// logsAckedPrefix starts the span_id of a spans row that records an
// acknowledged log record.
const logsAckedPrefix = "logs:"

// entryLogsAcked is the state of such a row; the span states are below it.
const entryLogsAcked = 3

const (
	loadLogsAckedSQL = `SELECT span_id, at FROM spans WHERE sink = :sink AND state = :state`
	keepLogsAckedSQL = `INSERT INTO spans (sink, span_id, state, at, doc) VALUES (:sink, :id, :state, :at, CAST('{}' AS BLOB))
ON CONFLICT (sink, span_id) DO UPDATE SET state = excluded.state, at = excluded.at, doc = excluded.doc`
)

// logsAcked is what an OTLP sink knows of the log records acknowledged for
// events whose batch is not delivered yet.
type logsAcked struct {
	ids     map[string]int64 // event id → when acknowledged (Unix ns)
	unsaved map[string]bool  // event id → kept (true) or forgotten (false), not yet in the outbox
	loaded  *outbox          // the outbox ids was read from
}

// loadLogsAcked reads the record of the outbox the sink now uses, once per
// outbox: what it holds replaces what the sink knew.
func (s *otlpSink) loadLogsAcked() error {
	if s.store == nil || s.acked.loaded == s.store.ob {
		return nil
	}
	ids := map[string]int64{}
	err := sqlitex.Execute(s.store.ob.conn, loadLogsAckedSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":sink": s.name, ":state": entryLogsAcked},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			if id, ok := strings.CutPrefix(stmt.ColumnText(0), logsAckedPrefix); ok {
				ids[id] = stmt.ColumnInt64(1)
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("load acknowledged log records: %w", err)
	}
	s.acked.ids, s.acked.unsaved, s.acked.loaded = ids, nil, s.store.ob
	return nil
}

// logsToSend are the events whose log records the backend has not
// acknowledged.
func (s *otlpSink) logsToSend(events []event) []event {
	if len(s.acked.ids) == 0 {
		return events
	}
	var out []event
	for _, e := range events {
		if _, ok := s.acked.ids[e.ID]; !ok {
			out = append(out, e)
		}
	}
	return out
}

// noteLogsAcked remembers that the log records of events were
// acknowledged while their batch was not delivered, and forgets what was
// noted longer ago than spanBound (an event that never came back: dead-
// lettered by a split, evicted, purged).
func (s *otlpSink) noteLogsAcked(events []event, now time.Time) {
	if s.acked.ids == nil {
		s.acked.ids = map[string]int64{}
	}
	for id, at := range s.acked.ids {
		if now.UnixNano()-at > int64(spanBound) {
			s.setAcked(id, false)
		}
	}
	for _, e := range events {
		s.acked.ids[e.ID] = now.UnixNano()
		s.setAcked(e.ID, true)
	}
}

// forgetLogsAcked forgets the record of events now delivered whole.
func (s *otlpSink) forgetLogsAcked(events []event) {
	if len(s.acked.ids) == 0 {
		return
	}
	for _, e := range events {
		if _, ok := s.acked.ids[e.ID]; ok {
			s.setAcked(e.ID, false)
		}
	}
}

func (s *otlpSink) setAcked(id string, kept bool) {
	if !kept {
		delete(s.acked.ids, id)
	}
	if s.acked.unsaved == nil {
		s.acked.unsaved = map[string]bool{}
	}
	s.acked.unsaved[id] = kept
}

// writeLogsAcked writes the changes to the record of log records
// acknowledged, in the caller's transaction.
func (k *keptState) writeLogsAcked(sink string) error {
	for id, at := range k.acked {
		q, args := deleteSpanSQL, map[string]any{":sink": sink, ":id": logsAckedPrefix + id}
		if at != 0 {
			q, args[":at"], args[":state"] = keepLogsAckedSQL, at, entryLogsAcked
		}
		if err := sqlitex.Execute(k.store.ob.conn, q, &sqlitex.ExecOptions{Named: args}); err != nil {
			return fmt.Errorf("keep acknowledged log records: %w", err)
		}
	}
	return nil
}
