package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// BenchmarkDrainSinks is BenchmarkDrain with three sinks on one outbox:
// the first, whose progress is the events rows, and two more with their
// own (outboxsinks.go), each with its own drainer and connection, each
// delivering to its own loopback endpoint. In the same run, interleaved,
// it measures the raw claim + delete rate of a one-sink outbox
// (raw-events/s) and drainer.step on that outbox (one-events/s), and
// reports each sink's rate as the three drain the same events one after
// the other (first-, second-, third-events/s) and, the three draining at
// once as the daemon does, how long the last takes (concurrent-events/s),
// each beside raw (x-raw; target ≥ 0.5).
func BenchmarkDrainSinks(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	single, _ := newBenchOutbox(b)
	multi, h := newBenchOutbox(b)
	if _, err := multi.syncSinks([]string{"second", "third"}); err != nil {
		b.Fatal(err)
	}
	newD := func(q queue) *drainer {
		srv, _ := benchEndpoint(b)
		s, err := parseEndpoint(srv.URL, "", "bench", false)
		if err != nil {
			b.Fatal(err)
		}
		return newDrainer(q, s, defaultBatch, log, time.Now)
	}
	drainers := []*drainer{newD(multi)}
	for _, name := range []string{"second", "third"} {
		ob, err := openOutbox(h, 5*time.Second, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ob.Close() })
		drainers = append(drainers, newD(&sinkQueue{ob: ob, name: name}))
	}
	one := newD(single)
	ctx := context.Background()
	deliver := func(d *drainer) {
		for {
			sent, err := d.step(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			if !sent {
				return
			}
		}
	}
	var ids benchIDs
	const round = 10 * defaultBatch
	var tRaw, tOne, tConc time.Duration
	tSink := make([]time.Duration, len(drainers))
	var nRaw, n int
	for b.Loop() {
		b.StopTimer()
		fill(b, single, &ids, round)
		t0 := time.Now()
		nRaw += drainRaw(b, single, defaultBatch)
		tRaw += time.Since(t0)
		fill(b, single, &ids, round)
		t0 = time.Now()
		deliver(one)
		tOne += time.Since(t0)

		fill(b, multi, &ids, round)
		b.StartTimer()
		for i, d := range drainers {
			t0 := time.Now()
			before := d.delivered
			deliver(d)
			tSink[i] += time.Since(t0)
			if got := d.delivered - before; got != round {
				b.Fatalf("sink %d delivered %d events, want %d", i, got, round)
			}
		}
		b.StopTimer()
		fill(b, multi, &ids, round)
		b.StartTimer()
		t0 = time.Now()
		var wg sync.WaitGroup
		for _, d := range drainers {
			wg.Go(func() { deliver(d) })
		}
		wg.Wait()
		tConc += time.Since(t0)
		n += round
	}
	if c, err := multi.counts(); err != nil || c.Pending+c.Inflight != 0 {
		b.Fatalf("the first sink left %+v, %v", c, err)
	}
	if left := rowsLeft(b, multi); left != 0 {
		b.Fatalf("%d events left in the outbox every sink had", left)
	}
	raw := float64(nRaw) / tRaw.Seconds()
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	b.ReportMetric(raw, "raw-events/s")
	b.ReportMetric(rate(tOne), "one-events/s")
	b.ReportMetric(rate(tOne)/raw, "one-x-raw")
	for i, name := range []string{"first", "second", "third"} {
		b.ReportMetric(rate(tSink[i]), name+"-events/s")
		b.ReportMetric(rate(tSink[i])/raw, name+"-x-raw")
	}
	b.ReportMetric(rate(tConc), "concurrent-events/s")
	b.ReportMetric(rate(tConc)/raw, "concurrent-x-raw")
}

// rowsLeft counts the events rows of ob, whatever their state.
func rowsLeft(b *testing.B, ob *outbox) int64 {
	b.Helper()
	var n int64
	err := sqlitex.Execute(ob.conn, `SELECT count(*) FROM events`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt64(0); return nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
