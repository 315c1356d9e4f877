package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// sinkChangeOutbox is an outbox of the sinks default (the first) and
// second, five events in, each sink part of the way through them:
//
//	seq  default          second
//	1    delivered        delivered
//	2    delivered        pending (a retry)
//	3    dead-lettered    delivered
//	4    pending          dead-lettered
//	5    pending          not yet tried
func sinkChangeOutbox(t *testing.T) *outbox {
	t.Helper()
	ob := mustOutbox(t, mustOpenHomeCreate(t, ownHome(t)), time.Now)
	t.Cleanup(func() { ob.Close() })
	ob.primary = defaultSinkName
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e1", "e2", "e3", "e4", "e5"} {
		if err := ob.insert(id, "test.kind", []byte(`{}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	err := sqlitex.ExecuteScript(ob.conn, `
UPDATE events SET state = 3 WHERE seq IN (1, 2);
UPDATE events SET state = 2, attempts = 3, last_error = 'default refused it' WHERE seq = 3;
UPDATE sinks SET hwm = 4 WHERE name = 'second';
INSERT INTO deliveries (seq, sink, state, attempts, available_at) VALUES (2, 'second', 0, 1, 0);
INSERT INTO deliveries (seq, sink, state, attempts, available_at, last_error) VALUES (4, 'second', 2, 3, 0, 'second refused it');
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

// idsWhere lists the ids of the events rows in a state, in seq order.
func idsWhere(t *testing.T, ob *outbox, state int) []string {
	t.Helper()
	var ids []string
	err := sqlitex.Execute(ob.conn, `SELECT id FROM events WHERE state = ? ORDER BY seq`, &sqlitex.ExecOptions{
		Args:       []any{state},
		ResultFunc: func(stmt *sqlite.Stmt) error { ids = append(ids, stmt.ColumnText(0)); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestFirstSinkRemoved: when the first sink is removed from config.toml
// and another stays, the one that stays keeps its own progress, now in
// the events rows: it takes neither the removed sink's dead letters nor
// its pending events, loses none of its own retries, and the events every
// configured sink has leave the outbox.
func TestFirstSinkRemoved(t *testing.T) {
	t.Parallel()
	ob := sinkChangeOutbox(t)
	ob.primary = "second"
	if _, err := ob.syncSinks(nil); err != nil {
		t.Fatal(err)
	}
	if got := idsWhere(t, ob, statePending); !slices.Equal(got, []string{"e2", "e5"}) {
		t.Errorf("pending for second after default went: %v, want its retry e2 and e5", got)
	}
	if got := idsWhere(t, ob, stateDead); !slices.Equal(got, []string{"e4"}) {
		t.Errorf("dead letters after default went: %v, want second's own, e4", got)
	}
	if got := idsWhere(t, ob, stateDone); len(got) != 0 {
		t.Errorf("rows no configured sink waits for are left: %v", got)
	}
	if r := rowOf(t, ob.conn, "e4"); r.lastError != "second refused it" {
		t.Errorf("e4's error %q, want second's", r.lastError)
	}
}

// TestFirstSinkMovedBack: a sink that stops being the first (another
// table is put before it) keeps its progress as one beyond the first, and
// the new first takes its own.
func TestFirstSinkMovedBack(t *testing.T) {
	t.Parallel()
	ob := sinkChangeOutbox(t)
	ob.primary = "second"
	if _, err := ob.syncSinks([]string{defaultSinkName}); err != nil {
		t.Fatal(err)
	}
	if got := idsWhere(t, ob, statePending); !slices.Equal(got, []string{"e2", "e5"}) {
		t.Errorf("pending for second as the first sink: %v, want e2 and e5", got)
	}
	q := &sinkQueue{ob: ob, name: defaultSinkName}
	_, evs, err := q.claim(100, maxBatchBytes, claimLease)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(evs); !slices.Equal(got, []string{"e4", "e5"}) {
		t.Errorf("default, now beyond the first, claimed %v; want its pending e4 and e5", got)
	}
}

// TestSinkAddedGetsNewEvents: a sink added to a home that already
// delivers to another receives the events queued from then on, not
// whatever the outbox happens to hold for the others; the sinks of a
// home's first configuration receive everything queued.
func TestSinkAddedGetsNewEvents(t *testing.T) {
	t.Parallel()
	ob := mustOutbox(t, mustOpenHomeCreate(t, ownHome(t)), time.Now)
	defer ob.Close()
	for _, id := range []string{"old1", "old2"} {
		if err := ob.insert(id, "test.kind", []byte(`{}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ob.primary = defaultSinkName
	if _, err := ob.syncSinks([]string{"first-config"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.syncSinks([]string{"first-config", "added"}); err != nil {
		t.Fatal(err)
	}
	if err := ob.insert("new1", "test.kind", []byte(`{}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"first-config": {"old1", "old2", "new1"}, "added": {"new1"}} {
		_, evs, err := (&sinkQueue{ob: ob, name: name}).claim(100, maxBatchBytes, claimLease)
		if err != nil {
			t.Fatal(err)
		}
		if got := eventIDs(evs); !slices.Equal(got, want) {
			t.Errorf("sink %s claimed %v, want %v", name, got, want)
		}
	}
}

// TestGapOfFirstSinkLeaves: a gap event of the first sink, which the
// other sinks never receive, leaves the outbox once the first sink
// delivered it: no row stays that no sink waits for (it stayed until the
// next reload, housekeeping or not).
func TestGapOfFirstSinkLeaves(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	dm, logs := newHousekeeper(t, h, newFakeClock())
	ob := dm.ob
	ob.primary = defaultSinkName
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e1", "gap", "e3"} {
		if err := ob.insert(id, "test.kind", []byte(`{}`), dm.now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := sqlitex.ExecuteTransient(ob.conn, `UPDATE events SET kind = '`+gapKind+`', sink = 'default' WHERE id = 'gap'`, nil); err != nil {
		t.Fatal(err)
	}
	q := &sinkQueue{ob: ob, name: "second"}
	for _, qu := range []queue{ob, q} {
		tok, evs, err := qu.claim(100, maxBatchBytes, claimLease)
		if err != nil {
			t.Fatal(err)
		}
		if err := qu.immediate(func() error { return qu.ack(tok, evs) }); err != nil {
			t.Fatal(err)
		}
	}
	dm.housekeep(context.Background())
	var left []string
	err := sqlitex.Execute(ob.conn, `SELECT id FROM events`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { left = append(left, stmt.ColumnText(0)); return nil },
	})
	if err != nil || len(left) != 0 {
		t.Errorf("left in the outbox after both sinks were done: %v (%v)\n%s", left, err, logs.String())
	}
}
