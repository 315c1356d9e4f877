package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite/sqlitex"
)

// recorder is an ingest endpoint that counts every event it receives,
// duplicates included, and answers 200 after a delay, so that a daemon
// killed at a random moment is often killed with a batch in flight.
type recorder struct {
	delay time.Duration
	mu    sync.Mutex
	seen  map[string]int             // event id → times received
	keys  map[string]map[string]bool // event id → Idempotency-Keys it came with
	total int
	gaps  map[string]int // gap event id → the events it says are missing
	reqs  chan struct{}  // one value per request received, dropped when full
}

func newRecorder(delay time.Duration) *recorder {
	return &recorder{delay: delay, seen: map[string]int{}, gaps: map[string]int{}, keys: map[string]map[string]bool{}, reqs: make(chan struct{}, 1)}
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var batch struct {
		Events []struct {
			ID      string `json:"id"`
			Kind    string `json:"kind"`
			Payload struct {
				Evicted int `json:"evicted"`
			} `json:"payload"`
		} `json:"events"`
	}
	body, err := readRequest(r)
	if err == nil {
		err = json.Unmarshal(body, &batch)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Counted on receipt: an event the daemon sent counts as arrived even
	// if the daemon dies before it reads the answer.
	rec.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	for _, e := range batch.Events {
		if e.Kind == gapKind {
			rec.gaps[e.ID] = e.Payload.Evicted
		}
		rec.seen[e.ID]++
		rec.total++
		if rec.keys[e.ID] == nil {
			rec.keys[e.ID] = map[string]bool{}
		}
		rec.keys[e.ID][key] = true
	}
	rec.mu.Unlock()
	select {
	case rec.reqs <- struct{}{}:
	default:
	}
	select {
	case <-time.After(rec.delay):
	case <-r.Context().Done():
		return // The daemon died or gave up; nobody reads the answer.
	}
	w.WriteHeader(http.StatusOK)
}

// checkAccounting checks the accounting that must hold once delivery is
// done: every event handed over was delivered, is a dead letter, or is
// counted by a gap event the endpoint received.
func (rec *recorder) checkAccounting(t *testing.T, handedOver int, dead int64) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	delivered, gaps := len(rec.seen)-len(rec.gaps), 0
	for _, n := range rec.gaps {
		gaps += n
	}
	if got := int64(delivered) + dead + int64(gaps); got != int64(handedOver) {
		t.Errorf("accounting: %d handed over, but %d delivered + %d dead letters + %d in gaps = %d",
			handedOver, delivered, dead, gaps, got)
	}
}

// counts returns how many distinct events arrived and how many in all.
func (rec *recorder) counts() (distinct, total int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen), rec.total
}

// crashSeedEnv replays TestCrashLoop with the seed a failing run logged.
const crashSeedEnv = "DIFFLORE_CRASH_SEED"

// crashInRequest is where TestCrashLoop kills a daemon besides its pause
// points: while the endpoint holds a request unanswered.
const crashInRequest = "request"

// TestCrashLoop kills the daemon with kill -9 (TerminateProcess on Windows)
// at named points chosen at random (crashPoints), then lets a final
// daemon finish. Delivery is at-least-once: every event must arrive, and a
// crash may cost at most two batches sent again (the one answered but not
// yet written down, and the one on the wire: drainer.run).
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	const (
		events = 300
		batch  = 10
	)
	crashes := 12
	if testing.Short() {
		crashes = 8
	}
	e := newTestEnv(t)
	rec := newRecorder(60 * time.Millisecond)
	srv := httptest.NewServer(rec)
	defer srv.Close()

	// Two thirds of the events are queued before the first daemon starts;
	// the rest while daemons run and die, so that enqueue also meets a
	// database whose writer was killed mid-transaction. It must neither
	// fail nor spill.
	enqueue := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			id := fmt.Sprintf("crash-%03d", i)
			if _, errOut, code := e.cli("", "enqueue", "--id", id, fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 100))); code != 0 || errOut != "" {
				t.Fatalf("enqueue %s: exit %d: %s", id, code, errOut)
			}
		}
	}
	upfront := events * 2 / 3
	start := time.Now()
	enqueue(0, upfront)
	enqueued := time.Since(start)

	seed := rand.Uint64()
	if v := os.Getenv(crashSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("random seed %d (replay it with %s=%d)", seed, crashSeedEnv, seed)
	args := []string{"--endpoint", srv.URL, "--batch", fmt.Sprint(batch)}
	loopStart := time.Now()
	crashPoints := []string{pauseClaim, pauseSend, crashInRequest, pauseSettle}
	var points []string
	for i := range crashes {
		// Kill at a named point, chosen at random: before the claim, with a
		// batch claimed but not sent, while the endpoint holds a request,
		// or with the answer read but the batch not settled.
		point := crashPoints[rng.IntN(len(crashPoints))]
		points = append(points, point)
		e.setenv(pauseEnv, point)
		if point == crashInRequest {
			e.setenv(pauseEnv, "")
		}
		select {
		case <-rec.reqs: // an earlier daemon's request
		default:
		}
		d := e.startDaemon(args...)
		enqueue(upfront+i*(events-upfront)/crashes, upfront+(i+1)*(events-upfront)/crashes)
		reached, requested := d.paused, rec.reqs
		if point == crashInRequest {
			reached = nil
		} else {
			requested = nil
		}
		select {
		case <-reached:
		case <-requested:
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
	e.setenv(pauseEnv, "")
	t.Logf("killed at %s", strings.Join(points, ", "))
	loop := time.Since(loopStart)
	distinctAfterCrashes, _ := rec.counts()

	finalStart := time.Now()
	d := e.startDaemon(args...)
	// Events that were in flight at a crash go back to the end of the
	// queue, so the outbox, not the arrivals, says when the work is done.
	waitFor(t, 60*time.Second, "the outbox to drain", func() bool {
		out, _, _ := e.cli("", "outbox", "list")
		return strings.HasPrefix(out, "0 pending, 0 inflight, 0 dead\n")
	})
	e.mustCLI("stop")
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Errorf("final daemon: %v\n%s", err, d.log)
	}
	final := time.Since(finalStart)

	distinct, total := rec.counts()
	dups := total - distinct
	t.Logf("%d events, %d crashes, batch %d: %d arrived before the final run, %d distinct in all, %d deliveries, %d duplicates (bound %d)",
		events, crashes, batch, distinctAfterCrashes, distinct, total, dups, 2*crashes*batch)
	t.Logf("timings: enqueue of the first %d %s, crash loop %s, final run %s", upfront, enqueued.Round(time.Millisecond), loop.Round(time.Millisecond), final.Round(time.Millisecond))
	if distinct != events {
		t.Errorf("%d distinct events arrived, want %d", distinct, events)
	}
	if dups > 2*crashes*batch {
		t.Errorf("%d duplicates after %d crashes: more than two batches of %d per crash", dups, crashes, batch)
	}
	rec.mu.Lock()
	for id, n := range rec.seen {
		if n > 1+crashes {
			t.Errorf("event %s arrived %d times in %d crashes", id, n, crashes)
		}
		// A batch sent again after a crash must carry the key it was
		// first sent with, or the receiver cannot deduplicate it.
		if len(rec.keys[id]) != 1 {
			t.Errorf("event %s arrived %d times under %d idempotency keys", id, n, len(rec.keys[id]))
		}
	}
	rec.mu.Unlock()
	out := e.mustCLI("outbox", "list")
	if !strings.HasPrefix(out, "0 pending, 0 inflight, 0 dead\n") {
		t.Errorf("outbox after the final run:\n%s", out)
	}
	rec.checkAccounting(t, events, outboxCounts(t, e.home).Dead)
	if bytes.Contains(d.log.Bytes(), []byte("level=ERROR")) {
		t.Errorf("final daemon logged errors:\n%s", d.log)
	}
}

// TestResentBatchKeepsItsKey checks, at the outbox, what the crash loop
// checks end to end: a batch that was in flight when its daemon died (or
// that a stopping daemon gave back) goes out again as the same set of
// events, so with the same idempotency key, even when older and newer
// events have been queued around it since.
func TestResentBatchKeepsItsKey(t *testing.T) {
	home := testHome(t)
	h, err := openHome(home, true)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	ob := mustOutbox(t, h, func() time.Time { return clock })
	defer ob.Close()
	insert := func(id string, created time.Time) {
		t.Helper()
		if err := ob.insert(id, "event", []byte(`{}`), created); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(events []event) []string {
		var out []string
		for _, e := range events {
			out = append(out, e.ID)
		}
		return out
	}
	for i := range 5 {
		insert(fmt.Sprintf("e%d", i), clock.Add(time.Duration(i)*time.Millisecond))
	}
	_, first, err := ob.claim(3, maxBatchBytes, claimLease)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon dies; meanwhile an older event is replayed from spill/
	// and a newer one is enqueued.
	insert("older", clock.Add(-time.Hour))
	insert("newer", clock.Add(time.Second))
	clock = clock.Add(2 * time.Second)
	if err := ob.resetInflight(); err != nil {
		t.Fatal(err)
	}
	token, again, err := ob.claim(10, maxBatchBytes, claimLease)
	if err != nil {
		t.Fatal(err)
	}
	if idempotencyKey(again) != idempotencyKey(first) {
		t.Fatalf("after a crash the batch %v went out as %v: a new idempotency key", ids(first), ids(again))
	}
	// A stopping daemon gives the batch back untried: same set again, and
	// the attempt is not counted.
	if err := ob.giveBack(token, again); err != nil {
		t.Fatal(err)
	}
	_, third, err := ob.claim(1, maxBatchBytes, claimLease)
	if err != nil {
		t.Fatal(err)
	}
	if idempotencyKey(third) != idempotencyKey(first) {
		t.Fatalf("a batch given back went out as %v, not %v", ids(third), ids(first))
	}
	if third[0].Attempt != again[0].Attempt {
		t.Errorf("giving a batch back counted an attempt: %d, then %d", again[0].Attempt, third[0].Attempt)
	}
}

// TestRetriedBuriedBatchDelivers kills a daemon with kill -9 twenty times
// (maxAttempts), each time at the moment it is about to send the same
// batch, so that the next daemon dead-letters the batch. 'outbox retry
// --all' then puts it back, and delivery must go on: every event arrives.
// A retried batch once kept the claim it died with; every claim after
// took it for a batch given back, reclaimed nothing and sent nothing.
func TestRetriedBuriedBatchDelivers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(0)
	srv := httptest.NewServer(rec)
	defer srv.Close()
	const events = 3
	for i := range events {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("buried-%d", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	args := []string{"--endpoint", srv.URL, "--batch", "10"}
	e.setenv(pauseEnv, pauseSend)
	for i := range maxAttempts {
		d := e.startDaemon(args...)
		select {
		case <-d.paused:
		case <-d.done:
			t.Fatalf("death %d: the daemon exited before it sent: %v\n%s", i, d.err, d.log)
		case <-time.After(30 * time.Second):
			t.Fatalf("death %d: the daemon did not reach the send step in 30s", i)
		}
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatalf("death %d: kill: %v", i, err)
		}
		d.wait(t, 10*time.Second)
	}
	if distinct, _ := rec.counts(); distinct != 0 {
		t.Fatalf("%d events arrived, but every daemon was killed before it sent", distinct)
	}
	// The next daemon to start buries the batch, and sends nothing.
	e.setenv(pauseEnv, "")
	d := e.startDaemon(args...)
	e.mustCLI("stop")
	d.wait(t, 15*time.Second)
	dead := e.deadLetters()
	if len(dead) != events || !strings.Contains(dead[0].LastError, "in flight when the daemon stopped") {
		t.Fatalf("after %d deaths: dead letters %+v, want the %d events of the batch", maxAttempts, dead, events)
	}

	e.mustCLI("outbox", "retry", "--all")
	e.mustCLI("enqueue", "--id", "after-retry", `{"n":"after"}`)
	out, errOut, code := e.cli("", "drain", "--endpoint", srv.URL)
	if code != 0 {
		t.Errorf("drain after 'outbox retry --all': exit %d\n%s%s", code, out, errOut)
	}
	if distinct, _ := rec.counts(); distinct != events+1 {
		t.Errorf("%d distinct events arrived, want %d", distinct, events+1)
	}
	if out := e.mustCLI("outbox", "list"); !strings.HasPrefix(out, "0 pending, 0 inflight, 0 dead\n") {
		t.Errorf("outbox after the drain:\n%s", out)
	}
	rec.checkAccounting(t, events+1, outboxCounts(t, e.home).Dead)
}

// TestClaimPassesAStaleToken checks the outbox a release before the fix
// left behind: dead letters sent again by 'outbox retry' with the claim
// token they died with. A claim must send them as new events, not stop at
// them as at a batch given back.
func TestClaimPassesAStaleToken(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	clk := newFakeClock()
	ob := mustOutbox(t, h, clk.now)
	defer ob.Close()
	for i := range 3 {
		if err := ob.insert(fmt.Sprintf("e%d", i), "event", []byte(`{}`), clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	// As the old retryDeadSQL left them: pending, ready now, token kept.
	err := sqlitex.Execute(ob.conn, `UPDATE events SET claim = 'old-token', attempts = 0, available_at = :now WHERE id IN ('e0', 'e1')`,
		&sqlitex.ExecOptions{Named: map[string]any{":now": clk.now().UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	_, events, err := ob.claim(10, maxBatchBytes, claimLease)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(events); !slices.Equal(got, []string{"e0", "e1", "e2"}) {
		t.Fatalf("claim took %v, want e0, e1 and e2", got)
	}
}
