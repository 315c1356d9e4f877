package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite/sqlitex"
)

// salvageBenchRows is the size of the outbox BenchmarkSalvage salvages.
const salvageBenchRows = 1_000_000

// salvageBenchCopySQL is the baseline of BenchmarkSalvage: the same rows
// copied by SQLite in one statement, from the old file attached to the
// fresh outbox, with no chunks, no state and no gap.
const salvageBenchCopySQL = `INSERT INTO events (id, kind, payload, created_at, state, attempts, available_at, claim, last_error, raw)
SELECT id, kind, payload, created_at, state, attempts, available_at, claim, last_error, raw FROM old.events ORDER BY seq`

// peakHeap samples the Go heap in use (SQLite's memory included: the
// driver is Go) until the returned function is called, which reports the
// highest sample less the heap in use at the start.
func peakHeap() func() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	stop, done := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak - base
	}
}

// salvageBenchFile makes, once per run, an outbox of salvageBenchRows
// events of about 100 bytes, and a copy of it with four pages damaged in
// its middle, and returns the paths of both.
func salvageBenchFile(b *testing.B) (intact, damaged string) {
	b.Helper()
	h := home{dir: b.TempDir()}
	ob, err := openOutbox(h, 5*time.Second, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"session_id":"6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162","tool_name":"Bash","n":0}`)
	now := time.Now()
	for i := 0; i < salvageBenchRows; i += 10000 {
		err := ob.immediate(func() error {
			for j := i; j < i+10000; j++ {
				if err := ob.insert(fmt.Sprintf("e%07d", j), "event", payload, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	ps, err := ob.pragmaInt("page_size")
	if err != nil {
		b.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		b.Fatal(err)
	}
	intact = h.path(dbFileName)
	db := h.path("damaged.db")
	copyFile(b, intact, db)
	fi, err := os.Stat(db)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(garbage(int(4*ps)), fi.Size()/ps/2*ps); err != nil {
		b.Fatal(err)
	}
	return intact, db
}

// copyFile copies the file at from to to.
func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSalvage salvages a corrupt outbox of a million events (four
// pages damaged) with healOutbox, and beside it, from the same file
// undamaged, copies the same rows with one INSERT … SELECT
// (salvageBenchCopySQL):
// the time (salvage-s, copy-s, x-copy) and the peak Go heap above where each
// started (salvage-heap-MB, copy-heap-MB). The salvage reads in chunks
// and writes its state with each, so its heap stays bounded whatever the
// size of the outbox.
func BenchmarkSalvage(b *testing.B) {
	intact, src := salvageBenchFile(b)
	var tSalvage, tCopy time.Duration
	var hSalvage, hCopy uint64
	for b.Loop() {
		h := home{dir: b.TempDir()}
		copyFile(b, src, h.path(dbFileName))
		peak := peakHeap()
		start := time.Now()
		if err := healOutbox(context.Background(), h, time.Now(), healGateWait, slog.New(slog.DiscardHandler)); err != nil {
			b.Fatal(err)
		}
		tSalvage += time.Since(start)
		hSalvage = max(hSalvage, peak())

		bh := home{dir: b.TempDir()}
		old := bh.path("old.db")
		copyFile(b, intact, old)
		peak = peakHeap()
		start = time.Now()
		fresh, err := openOutbox(bh, 5*time.Second, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		err = sqlitex.ExecuteTransient(fresh.conn, "ATTACH DATABASE '"+old+"' AS old", nil)
		if err == nil {
			err = sqlitex.ExecuteTransient(fresh.conn, salvageBenchCopySQL, nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		fresh.Close()
		tCopy += time.Since(start)
		hCopy = max(hCopy, peak())
	}
	n := float64(b.N)
	b.ReportMetric(tSalvage.Seconds()/n, "salvage-s")
	b.ReportMetric(tCopy.Seconds()/n, "copy-s")
	b.ReportMetric(tSalvage.Seconds()/tCopy.Seconds(), "x-copy")
	b.ReportMetric(float64(hSalvage)/(1<<20), "salvage-heap-MB")
	b.ReportMetric(float64(hCopy)/(1<<20), "copy-heap-MB")
}
