package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// benchEndpoint is a loopback ingest endpoint that reads every request
// body, gunzipping it when it is gzipped, and answers 200. It counts the
// requests it saw.
func benchEndpoint(b *testing.B) (*httptest.Server, *atomic.Int64) {
	b.Helper()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readRequest(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		requests.Add(1)
	}))
	b.Cleanup(srv.Close)
	return srv, &requests
}

// BenchmarkDrain delivers queued events to a loopback endpoint the way the
// daemon does (drainer.step: claim, encode, gzip, POST, settle), in batches
// of defaultBatch (events/s), and sets beside it, in the same run and the
// same outbox, the raw claim + delete rate (raw-events/s; target: drain ≥
// 0.5×, x-raw) and delivery one event per request (single-events/s;
// target: drain ≥ 3×, x-single).
func BenchmarkDrain(b *testing.B) {
	ob, _ := newBenchOutbox(b)
	srv, requests := benchEndpoint(b)
	s, err := parseEndpoint(srv.URL, "", "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	batched := newDrainer(ob, s, defaultBatch, log, time.Now)
	single := newDrainer(ob, s, 1, log, time.Now)
	ctx := context.Background()
	deliver := func(d *drainer) int {
		before := requests.Load()
		for {
			sent, err := d.run(ctx, ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !sent {
				break
			}
		}
		return int(requests.Load() - before)
	}
	var ids benchIDs
	const round = 10 * defaultBatch
	var tDrain, tRaw, tSingle time.Duration
	var nDrain, nRaw, nSingle int
	for b.Loop() {
		b.StopTimer()
		fill(b, ob, &ids, round)
		b.StartTimer()
		t0 := time.Now()
		if reqs := deliver(batched); reqs != round/defaultBatch {
			b.Fatalf("%d requests for %d events in batches of %d", reqs, round, defaultBatch)
		}
		tDrain += time.Since(t0)
		nDrain += round

		b.StopTimer()
		fill(b, ob, &ids, round)
		t0 = time.Now()
		nRaw += drainRaw(b, ob, defaultBatch)
		tRaw += time.Since(t0)

		fill(b, ob, &ids, round/10)
		t0 = time.Now()
		nSingle += deliver(single)
		tSingle += time.Since(t0)
		b.StartTimer()
	}
	drain := float64(nDrain) / tDrain.Seconds()
	raw := float64(nRaw) / tRaw.Seconds()
	one := float64(nSingle) / tSingle.Seconds()
	b.ReportMetric(drain, "events/s")
	b.ReportMetric(raw, "raw-events/s")
	b.ReportMetric(one, "single-events/s")
	b.ReportMetric(drain/raw, "x-raw")
	b.ReportMetric(drain/one, "x-single")
}
