package main

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCrashLoopSinks is TestCrashLoop with three sinks: the top-level
// endpoint and a [[sink]] over HTTP, and a file: sink. The daemon is
// killed with kill -9 twenty times at named points chosen at random (the
// first drainer to reach the point stops there, the others run on until
// the kill); then a final daemon finishes. Every sink receives every
// event, each HTTP sink under one idempotency key per event, a crash costs
// each sink at most two batches sent again (drainer.run: the one answered
// but not written down, and the one on the wire), and nothing is left
// queued for any sink.
func TestCrashLoopSinks(t *testing.T) {
	const (
		events  = 200
		batch   = 10
		crashes = 20
	)
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	recA, recB := newRecorder(40*time.Millisecond), newRecorder(40*time.Millisecond)
	srvA, srvB := httptest.NewServer(recA), httptest.NewServer(recB)
	defer srvA.Close()
	defer srvB.Close()
	archive := filepath.Join(t.TempDir(), "archive.jsonl")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("endpoint = %q\nbatch = %d\n\n[[sink]]\nname = \"b\"\nendpoint = %q\n\n[[sink]]\nname = \"archive\"\nendpoint = %q\n",
		srvA.URL, batch, srvB.URL, fileURL(archive))
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	enqueue := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			id := fmt.Sprintf("c%03d", i)
			if _, errOut, code := e.cli("", "enqueue", "--id", id, fmt.Sprintf(`{"n":%d}`, i)); code != 0 || errOut != "" {
				t.Fatalf("enqueue %s: exit %d: %s", id, code, errOut)
			}
		}
	}
	upfront := events / 2
	enqueue(0, upfront)
	crashSinks(e, crashes, func(i int) {
		enqueue(upfront+i*(events-upfront)/crashes, upfront+(i+1)*(events-upfront)/crashes)
	}, recA, recB)
	e.setenv(pauseEnv, "")
	d := e.startDaemon()
	waitFor(t, 60*time.Second, "every sink to have everything", func() bool {
		out, _, _ := e.cli("", "outbox", "list")
		return strings.HasPrefix(out, "0 pending, 0 inflight, 0 dead\n") &&
			strings.Contains(out, "sink b: 0 pending, 0 inflight, 0 dead\n") &&
			strings.Contains(out, "sink archive: 0 pending, 0 inflight, 0 dead\n")
	})
	e.mustCLI("stop")
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Errorf("final daemon: %v\n%s", err, d.log)
	}
	checkSinkArrivals(t, events, 2*crashes*batch, map[string]*recorder{"default": recA, "b": recB}, archive)
	ob := mustOutbox(t, mustOpenHome(t, dir), time.Now)
	defer ob.Close()
	if c, err := ob.counts(); err != nil || c.Pending+c.Inflight+c.Dead != 0 {
		t.Errorf("outbox after the final run: %+v, %v", c, err)
	}
}

// checkSinkArrivals checks what each sink of TestCrashLoopSinks received:
// every event, each HTTP sink under one idempotency key per event, at
// most bound deliveries again.
func checkSinkArrivals(t *testing.T, events, bound int, recs map[string]*recorder, archive string) {
	t.Helper()
	for name, rec := range recs {
		distinct, total := rec.counts()
		t.Logf("sink %s: %d distinct, %d deliveries, %d duplicates (bound %d)", name, distinct, total, total-distinct, bound)
		if distinct != events {
			t.Errorf("sink %s: %d distinct events arrived, want %d", name, distinct, events)
		}
		if total-distinct > bound {
			t.Errorf("sink %s: %d duplicates: more than a batch per crash (%d)", name, total-distinct, bound)
		}
		rec.mu.Lock()
		for id, k := range rec.keys {
			if len(k) != 1 {
				t.Errorf("sink %s: event %s arrived under %d idempotency keys", name, id, len(k))
			}
		}
		rec.mu.Unlock()
		rec.checkAccounting(t, events, 0)
	}
	lines := fileIDs(t, archive)
	total := 0
	for _, n := range lines {
		total += n
	}
	t.Logf("sink archive: %d distinct, %d lines", len(lines), total)
	if len(lines) != events || total-len(lines) > bound {
		t.Errorf("sink archive: %d distinct events in %d lines, want %d with at most %d again", len(lines), total, events, bound)
	}
}

// crashSinks starts and kills the daemon crashes times, each time at a
// point chosen at random (crashPoints of TestCrashLoop), calling during(i)
// while the i-th daemon runs, and checks that the point was reached.
func crashSinks(e *testEnv, crashes int, during func(i int), recs ...*recorder) {
	t := e.t
	t.Helper()
	seed := rand.Uint64()
	if v := os.Getenv(crashSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("random seed %d (replay it with %s=%d)", seed, crashSeedEnv, seed)
	crashPoints := []string{pauseClaim, pauseSend, crashInRequest, pauseSettle}
	var points []string
	for i := range crashes {
		point := crashPoints[rng.IntN(len(crashPoints))]
		points = append(points, point)
		e.setenv(pauseEnv, point)
		if point == crashInRequest {
			e.setenv(pauseEnv, "")
		}
		for _, rec := range recs {
			select {
			case <-rec.reqs:
			default:
			}
		}
		d := e.startDaemon()
		during(i)
		var reached <-chan string
		var reqA, reqB <-chan struct{}
		if point == crashInRequest {
			reqA, reqB = recs[0].reqs, recs[1].reqs
		} else {
			reached = d.paused
		}
		select {
		case <-reached:
		case <-reqA:
		case <-reqB:
		case <-time.After(10 * time.Second):
			t.Fatalf("crash %d: the daemon did not reach %s in 10s", i, point)
		}
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatalf("crash %d: kill: %v", i, err)
		}
		d.wait(t, 10*time.Second)
		if strings.Contains(d.log.String(), "panic") {
			t.Fatalf("crash %d: the daemon panicked:\n%s", i, d.log)
		}
	}
	t.Logf("killed at %s", strings.Join(points, ", "))
}
