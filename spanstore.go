package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// spansTableSQL is where the OTLP sinks keep their spans between batches
// (spans.go): each open start, each end whose start has not come, and
// each closed span for spanBound, so that a batch sent again after a crash
// is known. doc is JSON, at its time (Unix ns) for pruning. An open start
// or a lone end has a row of its own, keyed by its span id, its doc the
// spanEntry. The closed spans of a delivered batch share one row
// (closedRowsPrefix, state entryClosedRows), its doc their entries: a row
// per span, keyed by hashed ids, put each batch's fifty or so spans on as
// many pages spread over the table, which cost the settling transaction
// four times the rest of its writes and the checkpoints (BenchmarkDrainSpans).
const spansTableSQL = `CREATE TABLE IF NOT EXISTS spans (
	sink    TEXT    NOT NULL,
	span_id TEXT    NOT NULL,
	state   INTEGER NOT NULL,
	at      INTEGER NOT NULL,
	doc     BLOB    NOT NULL,
	PRIMARY KEY (sink, span_id)
) STRICT, WITHOUT ROWID;`

// loadSpansSQL reads a sink's rows in key order, which is the order the
// rows of closed spans were written in (closedRowKey).
const loadSpansSQL = `SELECT span_id, state, doc FROM spans WHERE sink = :sink ORDER BY span_id`

const upsertSpanSQL = `INSERT INTO spans (sink, span_id, state, at, doc) VALUES (:sink, :id, :state, :at, :doc)
ON CONFLICT (sink, span_id) DO UPDATE SET state = excluded.state, at = excluded.at, doc = excluded.doc`

const deleteSpanSQL = `DELETE FROM spans WHERE sink = :sink AND span_id = :id`

// pruneClosedRowsSQL drops the rows of closed spans that all ended before
// a sweep's limit: the sweep has forgotten every one of them.
const pruneClosedRowsSQL = `DELETE FROM spans WHERE sink = :sink AND state = :state AND at < :limit`

// closedRowsPrefix starts the span_id of a row that holds closed spans;
// the rest is a number that grows with each such row (closedRowKey).
const closedRowsPrefix = "closed:"

// entryClosedRows is the state of such a row; the span states and
// entryLogsAcked are below it.
const entryClosedRows = 4

// closedRowKey is the span_id of the n-th row of closed spans: fixed
// width, so that the key order is the order they were written in.
func closedRowKey(n int64) string { return fmt.Sprintf("%s%020d", closedRowsPrefix, n) }

// spanStore keeps one sink's spans in the outbox.
type spanStore struct {
	ob   *outbox
	sink string
	// ownRow are the span ids that have (or may have) a row of their
	// own: an entry that closes, or is forgotten, deletes it. An id
	// stays until its entry is forgotten, so that a transaction that
	// rolls back costs at most a delete that finds nothing.
	ownRow map[string]bool
	// lastClosedRow is the number of the newest row of closed spans.
	lastClosedRow int64
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
// delivered batch changed in the transaction that settles the batch, so
// that the outbox holds both or neither. The drainer takes that state
// (takeState) when it judges the answer, before the next batch is sent:
// the next send changes the sink's state while the batch answered is
// settled (drainer.run), and the settlement writes the state as the
// batch left it.
type outboxUser interface {
	useOutbox(ob *outbox) error
	// takeState takes what the batches answered so far changed and the
	// outbox does not have yet. The function it returns is called with
	// the error of the rest of the settlement: with nil it writes the
	// state in the caller's transaction, and on an error (the
	// settlement's or its own) the state waits for the next batch's
	// settlement, under what that batch changes. The caller calls lost
	// when the transaction rolled back after write returned: what write
	// wrote is then in no row either, and waits the same way.
	takeState() (write func(settled error) error, lost func())
	keepsState() bool // whether it keeps any: an OTLP sink without spans keeps none
}

func (s *otlpSink) keepsState() bool { return s.spans != nil }

func (st *spanStore) load() (*spanState, error) {
	state := newSpanState()
	st.ownRow = map[string]bool{}
	// The rows of closed spans are read first, oldest first, and the
	// entries with rows of their own last: a span in both was opened
	// again (its prompt id came back) after the row of closed spans was
	// written, since closing it deletes its own row.
	var own []*spanEntry
	err := sqlitex.Execute(st.ob.conn, loadSpansSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":sink": st.sink},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			switch stmt.ColumnInt64(1) {
			case entryLogsAcked:
				return nil
			case entryClosedRows:
				if n, err := strconv.ParseInt(strings.TrimPrefix(stmt.ColumnText(0), closedRowsPrefix), 10, 64); err == nil {
					st.lastClosedRow = max(st.lastClosedRow, n)
				}
				var closed []spanEntry
				if err := json.Unmarshal([]byte(stmt.ColumnText(2)), &closed); err != nil {
					return nil // a row this release cannot read is skipped, not fatal
				}
				for i := range closed {
					if closed[i].Span.SpanID != "" {
						state.add(&closed[i])
					}
				}
				return nil
			}
			var en spanEntry
			if err := json.Unmarshal([]byte(stmt.ColumnText(2)), &en); err != nil || en.Span.SpanID == "" {
				return nil
			}
			st.ownRow[en.Span.SpanID] = true
			own = append(own, &en)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load open spans: %w", err)
	}
	for _, en := range own {
		state.add(en)
	}
	return state, nil
}

// save writes what a delivered batch changed, in one transaction.
func (st *spanStore) save(changed []*spanEntry, removed []string) error {
	if len(changed) == 0 && len(removed) == 0 {
		return nil
	}
	return st.ob.immediate(func() error { return st.write(changed, removed, 0) })
}

// write writes changed and removed in the caller's transaction: each open
// or lone end in its own row, the closed ones together in a new row of
// closed spans, without what only a span still open needs (name, parent,
// attributes, status: they were sent when it closed). pruneBefore is the
// limit of the latest sweep not yet applied to the rows of closed spans;
// 0 when none.
func (st *spanStore) write(changed []*spanEntry, removed []string, pruneBefore int64) error {
	if st.ownRow == nil {
		st.ownRow = map[string]bool{}
	}
	upsert, err := st.ob.conn.Prepare(upsertSpanSQL)
	if err != nil {
		return err
	}
	del, err := st.ob.conn.Prepare(deleteSpanSQL)
	if err != nil {
		return err
	}
	put := func(id string, state, at int64, doc []byte) error {
		upsert.SetText(":sink", st.sink)
		upsert.SetText(":id", id)
		upsert.SetInt64(":state", state)
		upsert.SetInt64(":at", at)
		upsert.SetBytes(":doc", doc)
		return stepOnce(upsert)
	}
	dropOwn := func(id string) error {
		if !st.ownRow[id] {
			return nil
		}
		del.SetText(":sink", st.sink)
		del.SetText(":id", id)
		return stepOnce(del)
	}
	var closed []spanEntry
	var closedAt int64
	for _, en := range changed {
		at := max(en.Span.Start, en.Span.End)
		if en.State == entryClosed {
			c := *en
			c.Span = traceSpan{TraceID: en.Span.TraceID, SpanID: en.Span.SpanID, Start: en.Span.Start, End: en.Span.End}
			closed = append(closed, c)
			closedAt = max(closedAt, at)
			if err := dropOwn(en.Span.SpanID); err != nil {
				return err
			}
			continue
		}
		doc, err := json.Marshal(en)
		if err != nil {
			return err
		}
		if err := put(en.Span.SpanID, int64(en.State), at, doc); err != nil {
			return err
		}
		st.ownRow[en.Span.SpanID] = true
	}
	if len(closed) > 0 {
		doc, err := json.Marshal(closed)
		if err != nil {
			return err
		}
		st.lastClosedRow++
		if err := put(closedRowKey(st.lastClosedRow), entryClosedRows, closedAt, doc); err != nil {
			return err
		}
	}
	for _, id := range removed {
		// Deleted whether or not ownRow names it: a transaction that
		// deleted it and rolled back has taken it out of ownRow already.
		del.SetText(":sink", st.sink)
		del.SetText(":id", id)
		if err := stepOnce(del); err != nil {
			return err
		}
		delete(st.ownRow, id)
	}
	if pruneBefore != 0 {
		err := sqlitex.Execute(st.ob.conn, pruneClosedRowsSQL, &sqlitex.ExecOptions{
			Named: map[string]any{":sink": st.sink, ":state": entryClosedRows, ":limit": pruneBefore},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// commitSpans keeps in memory the state a delivered batch left, and queues
// it for the outbox (takeState); swept is the limit of the batch's sweep,
// 0 when it ran none.
func (s *otlpSink) commitSpans(swept int64) {
	changed, removed := s.spans.st.commit()
	if s.store == nil {
		return
	}
	s.unsavedPrune = max(s.unsavedPrune, swept)
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

// keptState is what an OTLP sink has to write of the batches answered so
// far, taken apart from the sink (takeState): the spans as those batches
// left them, however the batches sent since change them.
type keptState struct {
	store *spanStore
	// spans are copies of the entries changed, by span id; nil for an
	// entry dropped.
	spans map[string]*spanEntry
	prune int64 // the limit of the latest sweep; 0 when none
	// acked are the changes to the record of log records acknowledged
	// (otlpsignals.go): event id → when acknowledged, or 0 when the
	// record of it goes.
	acked map[string]int64
}

// takeState takes the changes not yet in the outbox, and any a failed
// settlement left (s.unwritten), older first: the newer change of an
// entry wins. It runs on the drainer's goroutine while no send is under
// way, as the function it returns does, which alone touches unwritten.
func (s *otlpSink) takeState() (write func(settled error) error, lost func()) {
	k := s.unwritten
	s.unwritten = nil
	if k == nil {
		k = &keptState{}
	}
	if s.store == nil {
		return func(settled error) error { return settled }, func() {}
	}
	k.store = s.store
	if len(s.unsaved) > 0 && k.spans == nil {
		k.spans = make(map[string]*spanEntry, len(s.unsaved))
	}
	for id, en := range s.unsaved {
		if en == nil {
			k.spans[id] = nil
			continue
		}
		// A copy: the next batch changes the entry in place.
		c := *en
		if c.State != entryClosed {
			// What a closed span's row keeps has no attributes (write).
			c.Span.Attrs = slices.Clone(en.Span.Attrs)
		}
		k.spans[id] = &c
	}
	clear(s.unsaved)
	k.prune, s.unsavedPrune = max(k.prune, s.unsavedPrune), 0
	if len(s.acked.unsaved) > 0 && k.acked == nil {
		k.acked = make(map[string]int64, len(s.acked.unsaved))
	}
	for id, kept := range s.acked.unsaved {
		at, ok := s.acked.ids[id]
		if !kept || !ok {
			at = 0
		}
		k.acked[id] = at
	}
	clear(s.acked.unsaved)
	write = func(settled error) error {
		err := settled
		if err == nil {
			err = k.write(s.name)
		}
		if err != nil {
			s.unwritten = k
		}
		return err
	}
	return write, func() { s.unwritten = k }
}

// write writes the state in the caller's transaction.
func (k *keptState) write(sink string) error {
	if err := k.writeLogsAcked(sink); err != nil {
		return err
	}
	if len(k.spans) == 0 && k.prune == 0 {
		return nil
	}
	var changed []*spanEntry
	var removed []string
	for id, en := range k.spans {
		if en == nil {
			removed = append(removed, id)
		} else {
			changed = append(changed, en)
		}
	}
	// In the order of their ids, so that the same changes make the same rows.
	slices.SortFunc(changed, func(a, b *spanEntry) int { return strings.Compare(a.Span.SpanID, b.Span.SpanID) })
	if err := k.store.write(changed, removed, k.prune); err != nil {
		return fmt.Errorf("keep open spans: %w", err)
	}
	return nil
}
