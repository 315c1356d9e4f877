package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite/sqlitex"
)

// TestOutboxGivesSpaceBack checks that a new outbox has incremental
// auto_vacuum on, and that vacuuming a drained outbox shrinks the file.
func TestOutboxGivesSpaceBack(t *testing.T) {
	t.Parallel()
	h := home{dir: t.TempDir()}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if mode, err := ob.pragmaInt("auto_vacuum"); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum = %d, %v; want 2 (incremental)", mode, err)
	}
	payload := []byte(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)
	err := ob.immediate(func() error {
		for i := range 2000 {
			if err := ob.insert(fmt.Sprint("e", i), "event", payload, time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	full, _ := ob.pragmaInt("page_count")
	for {
		token, events, err := ob.claim(500, maxBatchBytes, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			break
		}
		if err := ob.ack(token, events); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		_, left, err := ob.vacuum(vacuumStep)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
	}
	if pages, _ := ob.pragmaInt("page_count"); pages*4 > full {
		t.Errorf("drained outbox has %d pages, was %d full; want it to shrink", pages, full)
	}
	if _, err := os.Stat(h.path(dbFileName)); err != nil {
		t.Fatal(err)
	}
}

// TestEnsureAutoVacuum converts an outbox made with auto_vacuum off, as
// versions that set it after WAL mode made them.
func TestEnsureAutoVacuum(t *testing.T) {
	t.Parallel()
	h := home{dir: t.TempDir()}
	conn, err := openConn(h.path(dbFileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA journal_mode = WAL", "CREATE TABLE x (y)"} {
		if err := sqlitex.ExecuteTransient(conn.Conn, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if mode, _ := ob.pragmaInt("auto_vacuum"); mode != 0 {
		t.Fatalf("setup: auto_vacuum = %d, want 0", mode)
	}
	converted, err := ob.ensureAutoVacuum()
	if err != nil || !converted {
		t.Fatalf("ensureAutoVacuum = %v, %v; want true, nil", converted, err)
	}
	if mode, _ := ob.pragmaInt("auto_vacuum"); mode != 2 {
		t.Fatalf("auto_vacuum = %d after conversion, want 2", mode)
	}
	if converted, _ := ob.ensureAutoVacuum(); converted {
		t.Error("second ensureAutoVacuum converted again")
	}
}
