package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// TestSalvageKeepsSpans: a salvage of a corrupt outbox carries over the
// spans table: each sink's open starts (whose ends are not yet seen) meet
// their ends after it, and an open span counts as older than every event
// the fresh outbox numbers anew, as it was before.
func TestSalvageKeepsSpans(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	ob := mustOutbox(t, h, time.Now)
	err := ob.immediate(func() error {
		for i := range 200 {
			p := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 100))
			if err := insertEvent(ob.conn, fmt.Sprintf("sp-%04d", i), "event", []byte(p), time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	open := func(id string, seq int64) *spanEntry {
		return &spanEntry{Span: traceSpan{SpanID: id, TraceID: strings.Repeat("ab", 16), Name: "invoke_agent claude", Start: 1},
			State: entryOpen, Kind: entryTurn, Session: "claude\x00s1", Seq: seq, StartEvent: "start-" + id}
	}
	for sink, entries := range map[string][]*spanEntry{
		"default": {open("0102030405060708", 500), open("0102030405060709", 900)},
		"second":  {open("1102030405060708", 700)},
	} {
		if err := (&spanStore{ob: ob, sink: sink}).save(entries, nil); err != nil {
			t.Fatal(err)
		}
	}
	fresh, logs := salvageCorrupted(t, h, ob)
	defer fresh.Close()
	var minSeq int64
	err = sqlitex.ExecuteTransient(fresh.conn, `SELECT coalesce(min(seq), 1) FROM events`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { minSeq = stmt.ColumnInt64(0); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for sink, want := range map[string][]string{"default": {"0102030405060708", "0102030405060709"}, "second": {"1102030405060708"}} {
		state, err := (&spanStore{ob: fresh, sink: sink}).load()
		if err != nil {
			t.Fatal(err)
		}
		if len(state.open) != len(want) {
			t.Errorf("sink %s: %d open spans after the salvage, want %d\n%s", sink, len(state.open), len(want), logs.String())
			continue
		}
		for _, id := range want {
			en := state.open[id]
			if en == nil || en.StartEvent != "start-"+id || state.turn["claude\x00s1"] == "" {
				t.Errorf("sink %s: span %s after the salvage: %+v", sink, id, en)
				continue
			}
			if en.Seq >= minSeq {
				t.Errorf("sink %s: span %s has seq %d, not before the fresh outbox's first event (%d)", sink, id, en.Seq, minSeq)
			}
		}
		if a, b := state.open["0102030405060708"], state.open["0102030405060709"]; sink == "default" && a != nil && b != nil && a.Seq >= b.Seq {
			t.Errorf("the salvage turned the order of two open spans: seqs %d and %d", a.Seq, b.Seq)
		}
	}
}
