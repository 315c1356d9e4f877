package main

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// stmtReprepares reports, for each statement conn has cached, how many
// times SQLite compiled it again since the last call with reset
// (SQLITE_STMTSTATUS_REPREPARE). zombiezen's Conn keeps no public handle
// on its statements, so this reads its cache by reflection.
func stmtReprepares(t *testing.T, conn *sqlite.Conn, reset bool) map[string]int32 {
	t.Helper()
	cache := reflect.ValueOf(conn).Elem().FieldByName("stmts")
	if cache.Kind() != reflect.Map {
		t.Fatalf("zombiezen.com/go/sqlite's Conn has no stmts map any more: update stmtReprepares")
	}
	tls := libc.NewTLS()
	defer tls.Close()
	flag := int32(0)
	if reset {
		flag = 1
	}
	counts := map[string]int32{}
	for it := cache.MapRange(); it.Next(); {
		handle := it.Value().Elem().FieldByName("stmt")
		if handle.Kind() != reflect.Uintptr {
			t.Fatalf("zombiezen.com/go/sqlite's Stmt has no stmt handle any more: update stmtReprepares")
		}
		counts[it.Key().String()] = lib.Xsqlite3_stmt_status(tls, uintptr(handle.Uint()), lib.SQLITE_STMTSTATUS_REPREPARE, flag)
	}
	return counts
}

// TestSecondaryStatementsStayPrepared runs, several times over, what the
// drainers of a primary and of a secondary sink and the daemon's
// housekeeping run for each event (a claim of fresh events, a release, an
// ack, a claim of a retry and of a batch given back, nextAvailable, the age
// check of the limits), then asks SQLite how many times it compiled each
// statement of the connection anew. A statement whose plan depends on a
// bound value is compiled again each time a value is bound (SQLite does so
// for a text column compared with a bare parameter in a query that joins,
// orders or takes a min()): on a daemon with several sinks that cost each
// secondary's claim and look tens of microseconds of CPU, beside the sink
// that is delivering (BenchmarkSinksLatency).
func TestSecondaryStatementsStayPrepared(t *testing.T) {
	ob, clk, _ := testOutbox(t)
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	sq := &sinkQueue{ob: ob, name: "second"}
	queues := []struct {
		name string
		q    queue
		next func() (time.Time, bool, error)
	}{{"first", ob, ob.nextAvailable}, {"second", sq, sq.nextAvailable}}
	n := 0
	round := func() {
		t.Helper()
		var ids []string
		for range 3 {
			n++
			ids = append(ids, fmt.Sprintf("e%d", n))
		}
		insertN(t, ob, clk.now(), ids...)
		for _, s := range queues {
			q := s.q
			token, evs, err := q.claim(2, math.MaxInt, claimLease)
			if err != nil || len(evs) != 2 {
				t.Fatalf("%s: claim of fresh events: %d events, %v", s.name, len(evs), err)
			}
			err = q.immediate(func() error {
				if err := q.release(token, evs[:1], clk.now(), true, "503"); err != nil {
					return err
				}
				return q.ack(token, evs[1:])
			})
			if err != nil {
				t.Fatal(err)
			}
			// The retry and the third event, given back, then claimed
			// again as the same batch.
			token, evs, err = q.claim(10, math.MaxInt, claimLease)
			if err != nil || len(evs) != 2 {
				t.Fatalf("%s: claim of a retry and a fresh event: %d events, %v", s.name, len(evs), err)
			}
			if err := q.giveBack(token, evs); err != nil {
				t.Fatal(err)
			}
			token, evs, err = q.claim(10, math.MaxInt, claimLease)
			if err != nil || len(evs) != 2 {
				t.Fatalf("%s: claim of a batch given back: %d events, %v", s.name, len(evs), err)
			}
			if err := q.immediate(func() error { return q.ack(token, evs) }); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.next(); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := ob.oldestFor(sq.name); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Second)
	}
	round() // compiles each statement once
	stmtReprepares(t, ob.conn, true)
	const rounds = 5
	for range rounds {
		round()
	}
	for query, n := range stmtReprepares(t, ob.conn, false) {
		if n > 0 {
			t.Errorf("compiled again %d times in %d rounds:\n%s", n, rounds, query)
		}
	}
	var left int64
	err := sqlitex.Execute(ob.conn, `SELECT count(*) FROM events`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { left = stmt.ColumnInt64(0); return nil },
	})
	if err != nil || left != 0 {
		t.Errorf("%d events left that both sinks had (%v)", left, err)
	}
}
