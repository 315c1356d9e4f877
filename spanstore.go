package main

import (
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// spansTableSQL is where the OTLP sinks keep their spans between batches
// (spans.go): each open start, each end whose start has not come, and
// each closed span for spanBound, so that a batch sent again after a crash
// is known. One row per span per sink; doc is the spanEntry as JSON, at
// its time (Unix ns) for pruning.
const spansTableSQL = `CREATE TABLE IF NOT EXISTS spans (
	sink    TEXT    NOT NULL,
	span_id TEXT    NOT NULL,
	state   INTEGER NOT NULL,
	at      INTEGER NOT NULL,
	doc     BLOB    NOT NULL,
	PRIMARY KEY (sink, span_id)
) STRICT, WITHOUT ROWID;`

const loadSpansSQL = `SELECT doc FROM spans WHERE sink = :sink`

const upsertSpanSQL = `INSERT INTO spans (sink, span_id, state, at, doc) VALUES (:sink, :id, :state, :at, :doc)
ON CONFLICT (sink, span_id) DO UPDATE SET state = excluded.state, at = excluded.at, doc = excluded.doc`

const deleteSpanSQL = `DELETE FROM spans WHERE sink = :sink AND span_id = :id`

// spanStore keeps one sink's spans in the outbox.
type spanStore struct {
	ob   *outbox
	sink string
}

// useOutbox is how the drainer hands the OTLP sink its outbox before each
// send (the sink interface has no room for it, and the daemon may reopen
// the outbox). A new outbox is read once: the spans it keeps replace what
// the sink held.
func (s *otlpSink) useOutbox(ob *outbox) error {
	if s.spans == nil {
		return nil
	}
	if s.store == nil || s.store.ob != ob {
		st := &spanStore{ob: ob, sink: s.name}
		state, err := st.load()
		if err != nil {
			return err
		}
		s.spans.st, s.store = state, st
	}
	// Read here, not in send: the drainer claims its next batch on the
	// outbox's connection while send runs (drainer.run).
	return s.loadLogsAcked()
}

// outboxUser is a sink that keeps state in the outbox: the drainer hands
// it the outbox before each send (useOutbox), and has it write what a
// delivered batch changed (keepState) in the transaction that settles the
// batch, so that the outbox holds both or neither.
type outboxUser interface {
	useOutbox(ob *outbox) error
	keepState() error
}

func (st *spanStore) load() (*spanState, error) {
	state := newSpanState()
	err := sqlitex.Execute(st.ob.conn, loadSpansSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":sink": st.sink},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			var en spanEntry
			if err := json.Unmarshal([]byte(stmt.ColumnText(0)), &en); err != nil || en.Span.SpanID == "" {
				return nil // a row this release cannot read is skipped, not fatal
			}
			state.add(&en)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load open spans: %w", err)
	}
	return state, nil
}

// save writes what a delivered batch changed, in one transaction.
func (st *spanStore) save(changed []*spanEntry, removed []string) error {
	if len(changed) == 0 && len(removed) == 0 {
		return nil
	}
	return st.ob.immediate(func() error { return st.write(changed, removed) })
}

// write writes changed and removed in the caller's transaction.
func (st *spanStore) write(changed []*spanEntry, removed []string) error {
	upsert, err := st.ob.conn.Prepare(upsertSpanSQL)
	if err != nil {
		return err
	}
	for _, en := range changed {
		doc, err := json.Marshal(en)
		if err != nil {
			return err
		}
		upsert.SetText(":sink", st.sink)
		upsert.SetText(":id", en.Span.SpanID)
		upsert.SetInt64(":state", int64(en.State))
		upsert.SetInt64(":at", max(en.Span.Start, en.Span.End))
		upsert.SetBytes(":doc", doc)
		if err := stepOnce(upsert); err != nil {
			return err
		}
	}
	for _, id := range removed {
		if err := sqlitex.Execute(st.ob.conn, deleteSpanSQL, &sqlitex.ExecOptions{Named: map[string]any{":sink": st.sink, ":id": id}}); err != nil {
			return err
		}
	}
	return nil
}

// commitSpans keeps in memory the state a delivered batch left, and queues
// it for the outbox (keepState).
func (s *otlpSink) commitSpans() {
	changed, removed := s.spans.st.commit()
	if s.store == nil {
		return
	}
	if s.unsaved == nil {
		s.unsaved = map[string]*spanEntry{}
	}
	for _, en := range changed {
		s.unsaved[en.Span.SpanID] = en
	}
	for _, id := range removed {
		s.unsaved[id] = nil
	}
}

// keepState writes the spans' changes not yet in the outbox, in the
// caller's transaction. On an error they stay queued for the next batch.
func (s *otlpSink) keepState() error {
	if err := s.keepLogsAcked(); err != nil {
		return err
	}
	if s.store == nil || len(s.unsaved) == 0 {
		return nil
	}
	var changed []*spanEntry
	var removed []string
	for id, en := range s.unsaved {
		if en == nil {
			removed = append(removed, id)
		} else {
			changed = append(changed, en)
		}
	}
	if err := s.store.write(changed, removed); err != nil {
		return fmt.Errorf("keep open spans: %w", err)
	}
	clear(s.unsaved)
	return nil
}
