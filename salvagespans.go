package main

import (
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// A salvage carries the spans table over (spanstore.go): the OTLP sinks'
// open starts whose ends are not yet seen, the ends whose starts are not,
// the closed spans kept to recognise a resent batch, and the log records
// acknowledged for a batch whose spans were not (otlpsignals.go). Without
// them, an end delivered after the salvage would find no start and go out
// as an unfinished span of its own ("no_start"), and its start's span
// would never close.
//
// The events a salvage copies are numbered afresh from 1, and a span
// entry orders its starts by the seq of its event (ends of an agent
// without call ids are paired with the oldest open start). The entries
// were made from events delivered before the damage, so each keeps its
// order among the others and is moved before every seq of the fresh
// outbox: its seq less the largest one carried over, less one. A row of
// closed spans (closedRowsPrefix) is copied as it is: the seqs of closed
// spans order nothing.
//
// The copy is made in the transaction that ends the salvage (finish), so
// that a salvage killed before it makes it again. Rows the corrupt file
// cannot give are lost with it: they are not events, so no gap reports
// them; the log says how many rows were carried over and why the rest
// were not, and the spans they held go out as unfinished when their other
// half comes, as DESIGN.md's Traces section has it for a start whose end
// never comes.

const (
	salvageHasSpansSQL   = `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'spans'`
	salvageSpansSQL      = `SELECT sink, span_id, state, at, doc FROM spans`
	salvageSpanInsertSQL = `INSERT INTO spans (sink, span_id, state, at, doc) VALUES (:sink, :id, :state, :at, :doc)
ON CONFLICT (sink, span_id) DO NOTHING`
)

// spanRow is one row of the spans table.
type spanRow struct {
	sink, id  string
	state, at int64
	doc       []byte
}

// copySpans copies the spans table of the corrupt file into the fresh
// outbox, in the caller's transaction. It returns how many rows it carried
// over; an error of the corrupt file (readErr) leaves the rows read before
// it copied.
func (s *salvager) copySpans() (copied int64, readErr, err error) {
	if s.from == nil {
		return 0, fmt.Errorf("the corrupt file cannot be opened"), nil
	}
	var has bool
	if err := sqlitex.ExecuteTransient(s.from, salvageHasSpansSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { has = stmt.ColumnInt(0) > 0; return nil },
	}); err != nil || !has {
		return 0, err, nil // an outbox before version 5 has no spans
	}
	var rows []spanRow
	readErr = sqlitex.ExecuteTransient(s.from, salvageSpansSQL, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			doc := make([]byte, stmt.ColumnLen(4))
			stmt.ColumnBytes(4, doc)
			rows = append(rows, spanRow{stmt.ColumnText(0), stmt.ColumnText(1), stmt.ColumnInt64(2), stmt.ColumnInt64(3), doc})
			return nil
		},
	})
	entries := make([]*spanEntry, len(rows))
	var top int64
	for i, r := range rows {
		var en spanEntry
		if json.Unmarshal(r.doc, &en) == nil && en.Span.SpanID != "" {
			entries[i] = &en
			top = max(top, en.Seq)
		}
	}
	ins, err := s.to.conn.Prepare(salvageSpanInsertSQL)
	if err != nil {
		return 0, readErr, err
	}
	for i, r := range rows {
		doc := r.doc
		if en := entries[i]; en != nil {
			en.Seq -= top + 1
			if doc, err = json.Marshal(en); err != nil {
				return copied, readErr, err
			}
		}
		ins.SetText(":sink", r.sink)
		ins.SetText(":id", r.id)
		ins.SetInt64(":state", r.state)
		ins.SetInt64(":at", r.at)
		ins.SetBytes(":doc", doc)
		if err := stepOnce(ins); err != nil {
			return copied, readErr, err
		}
		copied += int64(s.to.conn.Changes())
	}
	return copied, readErr, nil
}
