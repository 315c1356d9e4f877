package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
			sent, err := d.run(ctx, ctx)
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

// BenchmarkSinksLatency measures enqueue → arrival at a live HTTP sink in
// two homes, alternating event by event on an idle daemon each: one with
// that sink alone, and one with three sinks, one of which answers 503 for
// the whole run (breaker open, retries). In /dead-first the live sink is
// a [[sink]] beside a file: sink, and the dead one is the first sink (the
// daemon loop's own drainer); in /dead-other the live sink is the first
// and the dead one a [[sink]]. It reports p50 and p99 of each side
// (one-p50-ms, three-p50-ms, …) and their ratios (x-one; target ≤ 1.1).
func BenchmarkSinksLatency(b *testing.B) {
	b.Run("dead-first", func(b *testing.B) { benchSinksLatency(b, true) })
	b.Run("dead-other", func(b *testing.B) { benchSinksLatency(b, false) })
}

func benchSinksLatency(b *testing.B, deadFirst bool) {
	one, three := newArrivals(), newArrivals()
	epOne, epThree := newEndpoint(b, one.script(200)), newEndpoint(b, three.script(200))
	dead := newEndpoint(b, always(answer{status: 503}))
	homes := []string{b.TempDir(), b.TempDir()}
	first, other := dead.URL, epThree.URL
	if !deadFirst {
		first, other = other, first
	}
	confs := []string{
		fmt.Sprintf("endpoint = %q\n", epOne.URL),
		fmt.Sprintf("endpoint = %q\n\n[[sink]]\nname = \"other\"\nendpoint = %q\n\n[[sink]]\nname = \"archive\"\nendpoint = %q\n",
			first, other, fileURL(filepath.Join(b.TempDir(), "a.jsonl"))),
	}
	b.Setenv("DIFFLORE_CLOUD_URL", "")
	b.Setenv("DIFFLORE_CLOUD_TOKEN", "")
	obs := make([]*outbox, 2)
	for i, dir := range homes {
		if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(confs[i]), 0o600); err != nil {
			b.Fatal(err)
		}
		b.Setenv("DIFFLORE_HOME", dir)
		inProcessDaemon(b, "--tick", "1h")
		obs[i] = mustOutbox(b, mustOpenHome(b, dir), time.Now)
		defer obs[i].Close()
	}
	arrs := []*arrivals{one, three}
	lat := [2][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range 2 {
			b.StopTimer()
			b.Setenv("DIFFLORE_HOME", homes[k])
			time.Sleep(rand.N(50 * time.Millisecond)) // a random phase
			b.StartTimer()
			id := fmt.Sprintf("lat-%d-%d", k, i)
			start := time.Now()
			var stderr strings.Builder
			if err := runTest(context.Background(), []string{"enqueue", "--id", id, `{"bench":true}`}, strings.NewReader(""), io.Discard, &stderr); err != nil {
				b.Fatalf("enqueue: %v %s", err, stderr.String())
			}
			lat[k] = append(lat[k], arrs[k].await(b, id, 10*time.Second).Sub(start))
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var p50, p99 [2]time.Duration
	for k := range 2 {
		slices.Sort(lat[k])
		p50[k], p99[k] = lat[k][len(lat[k])/2], lat[k][(len(lat[k])*99)/100]
	}
	b.ReportMetric(ms(p50[0]), "one-p50-ms")
	b.ReportMetric(ms(p99[0]), "one-p99-ms")
	b.ReportMetric(ms(p50[1]), "three-p50-ms")
	b.ReportMetric(ms(p99[1]), "three-p99-ms")
	b.ReportMetric(float64(p50[1])/float64(p50[0]), "p50-x-one")
	b.ReportMetric(float64(p99[1])/float64(p99[0]), "p99-x-one")
}
