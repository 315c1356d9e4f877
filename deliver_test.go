package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite/sqlitex"
)

// rig is a drainer on a fresh outbox, sending to a scripted loopback
// endpoint, with a fake clock and jitter that always picks the ceiling.
type rig struct {
	t   *testing.T
	clk *fakeClock
	ob  *outbox
	d   *drainer
	ep  *endpoint
}

func newRig(t *testing.T, script func(n int, r recorded) answer) *rig {
	t.Helper()
	h, err := openHome(ownHome(t), true)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	ob, err := openOutbox(h, 5*time.Second, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	ep := newEndpoint(t, script)
	d := newDrainer(ob, testSink(t, ep.URL, "tok-secret"), defaultBatch, slog.New(slog.DiscardHandler), clk.now)
	d.jitter = func(x time.Duration) time.Duration { return x }
	return &rig{t: t, clk: clk, ob: ob, d: d, ep: ep}
}

// add queues n events with ids prefix-00, prefix-01, … and returns the ids.
func (r *rig) add(prefix string, n int, payload string) []string {
	r.t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		if err := r.ob.insert(id, "test.kind", []byte(payload), r.clk.now()); err != nil {
			r.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// step runs one drainer step and reports whether it sent anything.
func (r *rig) step() bool {
	r.t.Helper()
	sent, err := r.d.step(context.Background())
	if err != nil {
		r.t.Fatalf("step: %v", err)
	}
	return sent
}

// drain steps until nothing is ready at the current time.
func (r *rig) drain() {
	r.t.Helper()
	for i := 0; r.step(); i++ {
		if i > 1000 {
			r.t.Fatal("drain: still sending after 1000 steps")
		}
	}
}

func (r *rig) row(id string) row { return rowOf(r.t, r.ob.conn, id) }

func (r *rig) counts() counts {
	r.t.Helper()
	c, err := r.ob.counts()
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// breakerOpen reports whether the breaker is open, as status shows it.
func (r *rig) breakerOpen() bool {
	r.t.Helper()
	return strings.HasPrefix(r.meta()["breaker"], "open until ")
}

func (r *rig) meta() map[string]string {
	r.t.Helper()
	m, err := r.ob.meta()
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// TestDeliverAnswerTable drives each answer of the README's Delivery section
// through the drainer and checks what is stored per event.
func TestDeliverAnswerTable(t *testing.T) {
	t.Parallel()
	const far = 5 * time.Minute // a date Retry-After, from the real clock the sink reads
	tests := []struct {
		name      string
		a         answer
		state     int           // of each event after one step; -1: delivered
		attempts  int           // counted attempts after one step
		wait      time.Duration // available_at - now, for pending events
		waitSlack time.Duration // accepted shortfall (an HTTP date has whole seconds)
		errHas    string
		paused    bool
	}{
		{name: "200", a: answer{status: 200}, state: -1},
		{name: "202 with a body", a: answer{status: 202, body: `{"accepted":3}`}, state: -1},
		{name: "408", a: answer{status: 408}, state: statePending, attempts: 1, wait: time.Second, errHas: "408 Request Timeout"},
		{name: "429 without Retry-After", a: answer{status: 429}, state: statePending, attempts: 1, wait: 60 * time.Second, errHas: "429"},
		{name: "429 Retry-After seconds", a: answer{status: 429, header: map[string]string{"Retry-After": "120"}}, state: statePending, attempts: 1, wait: 120 * time.Second, errHas: "429"},
		{name: "429 Retry-After over an hour", a: answer{status: 429, header: map[string]string{"Retry-After": "86400"}}, state: statePending, attempts: 1, wait: time.Hour, errHas: "429"},
		{name: "500", a: answer{status: 500, body: "oops"}, state: statePending, attempts: 1, wait: time.Second, errHas: "500 Internal Server Error: oops"},
		{name: "502", a: answer{status: 502}, state: statePending, attempts: 1, wait: time.Second, errHas: "502"},
		{name: "503 Retry-After date", a: answer{status: 503, header: map[string]string{"Retry-After": time.Now().Add(far).UTC().Format(http.TimeFormat)}},
			state: statePending, attempts: 1, wait: far, waitSlack: 30 * time.Second, errHas: "503"},
		{name: "503 Retry-After shorter than the backoff", a: answer{status: 503, header: map[string]string{"Retry-After": "0"}}, state: statePending, attempts: 1, wait: time.Second, errHas: "503"},
		{name: "504", a: answer{status: 504}, state: statePending, attempts: 1, wait: time.Second, errHas: "504"},
		{name: "connection refused", a: answer{status: -1}, state: statePending, attempts: 1, wait: time.Second, errHas: "refused"},
		{name: "timeout", a: answer{hang: true}, state: statePending, attempts: 1, wait: time.Second, errHas: "deadline exceeded"},
		{name: "400", a: answer{status: 400, body: `{"error":"field x"}`}, state: stateDead, attempts: 1, errHas: `400 Bad Request: {"error":"field x"}`},
		{name: "413", a: answer{status: 413}, state: stateDead, attempts: 1, errHas: "413 Request Entity Too Large"},
		{name: "422", a: answer{status: 422, body: "tok-secret leaked"}, state: stateDead, attempts: 1, errHas: "422 Unprocessable Entity: [redacted] leaked"},
		{name: "401", a: answer{status: 401}, state: statePending, attempts: 0, errHas: "401", paused: true},
		{name: "403", a: answer{status: 403}, state: statePending, attempts: 0, errHas: "403", paused: true},
		{name: "404", a: answer{status: 404}, state: statePending, attempts: 0, errHas: "404", paused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, always(tt.a))
			if tt.a.status == -1 {
				// A network error: nothing listens at the address.
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				ln.Close()
				r.d.sink = testSink(t, "http://"+addr+"/ingest", "tok-secret")
			}
			if tt.a.hang {
				// Only the hanging endpoint gets a short timeout: a slow
				// machine must not turn the other rows into timeouts.
				r.d.sink.(*httpSink).timeout = 200 * time.Millisecond
			}
			ids := r.add("e", 1, `{"n":1}`)
			start := r.clk.now()
			if !r.step() {
				t.Fatal("step sent nothing")
			}
			got := r.row(ids[0])
			if got.state != tt.state || got.state >= 0 && got.attempts != tt.attempts {
				t.Fatalf("after %s: state %d, attempts %d; want state %d, attempts %d", tt.name, got.state, got.attempts, tt.state, tt.attempts)
			}
			if got.state >= 0 && !strings.Contains(got.lastError, tt.errHas) || strings.Contains(got.lastError, "tok-secret") {
				t.Errorf("last error %q, want it to contain %q and no token", got.lastError, tt.errHas)
			}
			if got.state == statePending && !tt.paused {
				if w := got.availableAt.Sub(start); w > tt.wait || w < tt.wait-tt.waitSlack {
					t.Errorf("available after %s, want %s", w, tt.wait)
				}
			}
			m := r.meta()
			if tt.state == -1 && (m["last_delivery_count"] != "1" || m["last_error"] != "") {
				t.Errorf("status after a delivery: %v", m)
			}
			if tt.state != -1 && !strings.Contains(m["last_error"], tt.errHas[:3]) {
				t.Errorf("status last_error %q, want %q", m["last_error"], tt.errHas[:3])
			}
			if gotPaused := m["paused_reason"] != ""; gotPaused != tt.paused {
				t.Errorf("paused_reason %q, want paused=%v", m["paused_reason"], tt.paused)
			}
			if n := len(r.ep.requests()); n != 1 && tt.a.status != -1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	d := &drainer{}
	ceiling := func(x time.Duration) time.Duration { return x }
	tests := []struct {
		attempt    int
		retryAfter time.Duration
		want       time.Duration // with jitter at its ceiling
	}{
		{0, 0, time.Second},
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{9, 0, 256 * time.Second},
		{10, 0, 5 * time.Minute},
		{19, 0, 5 * time.Minute},
		{20, 0, 5 * time.Minute},
		{1000, 0, 5 * time.Minute},
		{1, 30 * time.Second, 30 * time.Second},           // Retry-After longer: it wins
		{6, 2 * time.Second, 32 * time.Second},            // backoff longer: it wins
		{10, 2 * time.Hour, time.Hour},                    // Retry-After capped at an hour
		{1, retryAfter429, retryAfter429},                 // a 429 without Retry-After
		{15, 10 * time.Minute, 10 * time.Minute},          // beyond the backoff cap when asked
		{3, -time.Second, 4 * time.Second},                // nonsense is ignored
		{64, 0, 5 * time.Minute},                          // no overflow
		{maxAttempts + 1, time.Second, backoffCap},        // never more than the cap
		{2, maxRetryAfter + time.Second, maxRetryAfter},   // at most an hour
		{4, maxRetryAfter - time.Second, time.Hour - 1e9}, // just under an hour
	}
	for _, tt := range tests {
		d.jitter = ceiling
		if got := d.backoff(tt.attempt, tt.retryAfter); got != tt.want {
			t.Errorf("backoff(%d, %s) at full jitter = %s, want %s", tt.attempt, tt.retryAfter, got, tt.want)
		}
		// With real jitter the wait is anywhere from Retry-After to the
		// ceiling: full jitter, never below what the endpoint asked.
		d.jitter = newDrainer(nil, nil, 1, nil, time.Now).jitter
		floor := max(0, min(tt.retryAfter, maxRetryAfter))
		for range 200 {
			if got := d.backoff(tt.attempt, tt.retryAfter); got < floor || got > tt.want {
				t.Fatalf("backoff(%d, %s) = %s, want in [%s, %s]", tt.attempt, tt.retryAfter, got, floor, tt.want)
			}
		}
	}
	// Full jitter spreads the waits: not all at the ceiling.
	d.jitter = newDrainer(nil, nil, 1, nil, time.Now).jitter
	low := 0
	for range 200 {
		if d.backoff(10, 0) < backoffCap/2 {
			low++
		}
	}
	if low < 50 || low > 150 {
		t.Errorf("%d of 200 waits below half the cap, want about 100", low)
	}
}

func TestSplitRejected(t *testing.T) {
	evs := testEvents(4, `{}`) // ids evt-a … evt-d
	tests := []struct {
		name                string
		rejected            []rejection
		ok, retry, deadErrs []string
	}{
		{"none", nil, []string{"evt-a", "evt-b", "evt-c", "evt-d"}, nil, nil},
		{"one dead", []rejection{{ID: "evt-b", Error: "schema"}}, []string{"evt-a", "evt-c", "evt-d"}, nil, []string{"evt-b: rejected: schema"}},
		{"one retry", []rejection{{ID: "evt-c", Error: "busy", Retryable: true}}, []string{"evt-a", "evt-b", "evt-d"}, []string{"evt-c"}, nil},
		{"unknown id ignored", []rejection{{ID: "nope", Error: "x"}}, []string{"evt-a", "evt-b", "evt-c", "evt-d"}, nil, nil},
		{"all", []rejection{{ID: "evt-a"}, {ID: "evt-b", Retryable: true}, {ID: "evt-c"}, {ID: "evt-d", Retryable: true}},
			nil, []string{"evt-b", "evt-d"}, []string{"evt-a: rejected: ", "evt-c: rejected: "}},
	}
	ids := func(evs []event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	for _, tt := range tests {
		ok, retry, dead := splitRejected(evs, tt.rejected)
		var gotRetry, gotDead []string
		for _, g := range retry {
			gotRetry = append(gotRetry, ids(g.events)...)
		}
		for _, g := range dead {
			gotDead = append(gotDead, g.events[0].ID+": "+g.err)
		}
		if !slices.Equal(ids(ok), tt.ok) || !slices.Equal(gotRetry, tt.retry) || !slices.Equal(gotDead, tt.deadErrs) {
			t.Errorf("%s: ok %v retry %v dead %v; want %v %v %v", tt.name, ids(ok), gotRetry, gotDead, tt.ok, tt.retry, tt.deadErrs)
		}
	}
}

func TestDeliverPartialSuccess(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(n int, _ recorded) answer {
		if n == 0 {
			return answer{status: 200, body: `{"rejected":[{"id":"e-01","error":"schema: no field x","retryable":false},{"id":"e-03","error":"try later","retryable":true}]}`}
		}
		return answer{status: 200}
	})
	ids := r.add("e", 5, `{"v":1}`)
	r.step()
	for _, id := range []string{ids[0], ids[2], ids[4]} {
		if got := r.row(id); got.state != -1 {
			t.Errorf("%s: state %d, want delivered", id, got.state)
		}
	}
	if got := r.row(ids[1]); got.state != stateDead || got.lastError != "rejected: schema: no field x" {
		t.Errorf("non-retryable rejection: %+v, want dead with its error", got)
	}
	got := r.row(ids[3])
	if got.state != statePending || got.attempts != 1 || got.lastError != "rejected: try later" || !got.availableAt.Equal(r.clk.now().Add(time.Second)) {
		t.Errorf("retryable rejection: %+v, want pending after 1s with its error", got)
	}
	if m := r.meta(); m["last_delivery_count"] != "3" {
		t.Errorf("last_delivery_count %q, want 3", m["last_delivery_count"])
	}
	if r.step() {
		t.Fatal("the retryable event was sent again before its backoff")
	}
	r.clk.advance(time.Second)
	r.drain()
	reqs := r.ep.requests()
	if len(reqs) != 2 || !slices.Equal(reqs[1].ids(), []string{ids[3]}) || reqs[1].batch.Events[0].Attempt != 2 {
		t.Fatalf("second request %v, want only %s at attempt 2", reqs[len(reqs)-1].ids(), ids[3])
	}
	if c := r.counts(); c.Pending != 0 || c.Dead != 1 {
		t.Errorf("counts %+v, want only the dead letter left", c)
	}
}

func TestDeliverPoisonEventIsolated(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	delivered := map[string]int{}
	r := newRig(t, func(n int, req recorded) answer {
		for _, e := range req.batch.Events {
			if strings.Contains(string(e.Payload), "poison") {
				return answer{status: 422, body: `{"error":"event ` + e.ID + ` is poison"}`}
			}
		}
		mu.Lock()
		for _, id := range req.ids() {
			delivered[id]++
		}
		mu.Unlock()
		return answer{status: 200}
	})
	good := r.add("good", 17, `{"ok":true}`)
	if err := r.ob.insert("bad", "test.kind", []byte(`{"poison":true}`), r.clk.now()); err != nil {
		t.Fatal(err)
	}
	good = append(good, r.add("late", 13, `{"ok":true}`)...)
	r.drain()
	if len(delivered) != 30 {
		t.Errorf("%d good events delivered, want 30", len(delivered))
	}
	for _, id := range good {
		if delivered[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, delivered[id])
		}
		if got := r.row(id); got.state != -1 {
			t.Errorf("%s still in the outbox: %+v", id, got)
		}
	}
	bad := r.row("bad")
	if bad.state != stateDead || !strings.HasPrefix(bad.lastError, `422 Unprocessable Entity: {"error":"event bad is poison"}`) {
		t.Errorf("poison event: %+v, want dead with the answer as its error", bad)
	}
	// Halving 31 events isolates one in at most 2*log2(32)+1 requests.
	if n := len(r.ep.requests()); n > 11 {
		t.Errorf("%d requests to isolate one event among 31, want at most 11", n)
	}
	for _, req := range r.ep.requests() {
		if req.header.Get("Idempotency-Key") != idempotencyKeyOf(req.ids()) {
			t.Errorf("a split batch kept its parent's Idempotency-Key")
		}
	}
}

func idempotencyKeyOf(ids []string) string {
	evs := make([]event, len(ids))
	for i, id := range ids {
		evs[i].ID = id
	}
	return idempotencyKey(evs)
}

func TestDeliverPauseOn401(t *testing.T) {
	t.Parallel()
	status := 401
	var mu sync.Mutex
	r := newRig(t, func(int, recorded) answer {
		mu.Lock()
		defer mu.Unlock()
		return answer{status: status, body: "invalid token"}
	})
	ids := r.add("e", 3, `{}`)
	since := r.clk.now()
	// An hour of 401s: a request about every 30 s, no attempt counted, no
	// dead letter.
	for range 120 {
		if !r.step() {
			t.Fatal("paused drainer did not retry after 30s")
		}
		r.clk.advance(pauseRetry - time.Second)
		if r.step() {
			t.Fatal("paused drainer sent before 30s")
		}
		r.clk.advance(time.Second)
	}
	if n := len(r.ep.requests()); n != 120 {
		t.Errorf("%d requests in an hour of pause, want 120", n)
	}
	c := r.counts()
	if c.Dead != 0 || c.Pending != 3 || c.Inflight != 0 {
		t.Errorf("counts after an hour paused: %+v, want 3 pending", c)
	}
	for _, id := range ids {
		if got := r.row(id); got.attempts != 0 {
			t.Errorf("%s: %d attempts counted while paused", id, got.attempts)
		}
	}
	m := r.meta()
	if !strings.Contains(m["paused_reason"], "401 Unauthorized: invalid token") || m["paused_since"] != since.Format(time.RFC3339) {
		t.Errorf("status while paused: reason %q since %q, want the 401 since %s", m["paused_reason"], m["paused_since"], since.Format(time.RFC3339))
	}
	mu.Lock()
	status = 200
	mu.Unlock()
	r.step()
	if c := r.counts(); c.Pending != 0 {
		t.Errorf("after the token was fixed: %+v", c)
	}
	if m := r.meta(); m["paused_reason"] != "" || m["paused_since"] != "" {
		t.Errorf("pause still shown after a delivery: %v", m)
	}
	if got := r.ep.requests(); got[len(got)-1].batch.Events[0].Attempt != 1 {
		t.Errorf("first real attempt carries attempt %d, want 1", got[len(got)-1].batch.Events[0].Attempt)
	}
	// A later 401 is a new pause, with a new "since".
	mu.Lock()
	status = 403
	mu.Unlock()
	r.clk.advance(time.Hour)
	r.add("f", 1, `{}`)
	r.step()
	if m := r.meta(); m["paused_since"] != r.clk.now().Format(time.RFC3339) || !strings.Contains(m["paused_reason"], "403") {
		t.Errorf("second pause: since %q reason %q, want since %s", m["paused_since"], m["paused_reason"], r.clk.now().Format(time.RFC3339))
	}
}

func TestDeliverDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	// The endpoint takes every batch but marks one event as retryable each
	// time: every round counts an attempt, and the breaker stays closed.
	r := newRig(t, always(answer{status: 200, body: `{"rejected":[{"id":"e-00","error":"not yet","retryable":true}]}`}))
	r.add("e", 1, `{}`)
	for i := 1; i <= maxAttempts; i++ {
		if !r.step() {
			t.Fatalf("attempt %d not sent", i)
		}
		got := r.row("e-00")
		if i < maxAttempts && (got.state != statePending || got.attempts != i) {
			t.Fatalf("after attempt %d: %+v", i, got)
		}
		at, ok, err := r.ob.nextAvailable()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			r.clk.set(at)
		}
	}
	got := r.row("e-00")
	if got.state != stateDead || got.attempts != maxAttempts || got.lastError != "rejected: not yet" {
		t.Errorf("after %d attempts: %+v, want dead with the last error", maxAttempts, got)
	}
	for i, req := range r.ep.requests() {
		if a := req.batch.Events[0].Attempt; a != i+1 {
			t.Errorf("request %d carries attempt %d", i+1, a)
		}
	}
	// The same through the 5xx path, in the outbox: the 20th counted
	// failure buries the event.
	ids := r.add("f", 1, `{}`)
	for i := 1; i <= maxAttempts; i++ {
		tok, evs, err := r.ob.claim(1, maxBatchBytes, time.Minute)
		if err != nil || len(evs) != 1 {
			t.Fatalf("claim %d: %v %v", i, evs, err)
		}
		if err := r.ob.release(tok, evs, r.clk.now(), true, "503 Service Unavailable"); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.row(ids[0]); got.state != stateDead || got.lastError != "503 Service Unavailable" {
		t.Errorf("after %d failed attempts: %+v, want dead", maxAttempts, got)
	}
}

func TestDeliverBreaker(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := 503
	r := newRig(t, func(int, recorded) answer {
		mu.Lock()
		defer mu.Unlock()
		return answer{status: status}
	})
	ids := r.add("e", 10, `{}`)
	next := func() {
		at, ok, err := r.ob.nextAvailable()
		if err != nil || !ok {
			t.Fatalf("nextAvailable: %v %v", ok, err)
		}
		r.clk.set(at)
	}
	for i := 1; i <= breakerThreshold; i++ {
		if !r.step() {
			t.Fatalf("failure %d: nothing sent", i)
		}
		if open := r.breakerOpen(); open != (i == breakerThreshold) {
			t.Fatalf("after %d failures breaker open = %v", i, open)
		}
		if i < breakerThreshold {
			next()
		}
	}
	if m := r.meta(); !strings.HasPrefix(m["breaker"], "open until ") {
		t.Errorf("status breaker %q, want open", m["breaker"])
	}
	// Open: nothing is sent before the first probe, 5 s on, and the probe
	// goes when an event is ready: the last failure's backoff is longer.
	if got, want := r.meta()["breaker"], "open until "+r.clk.now().Add(breakerFirstProbe).UTC().Format(time.RFC3339); got != want {
		t.Errorf("status breaker %q, want %q: the first probe %s after opening", got, want, breakerFirstProbe)
	}
	r.clk.advance(breakerFirstProbe)
	if r.step() {
		t.Fatal("probe sent before any event was ready")
	}
	next()
	if !r.step() || len(r.ep.requests()[breakerThreshold].ids()) != 1 {
		t.Fatal("first probe did not send one event")
	}
	// Each failed probe doubles the wait, up to 5 minutes, and counts no
	// attempt.
	want := 2 * breakerFirstProbe
	for range 8 {
		opened := r.clk.now()
		r.clk.set(opened.Add(want - time.Millisecond))
		n := len(r.ep.requests())
		if r.step() || len(r.ep.requests()) != n {
			t.Fatalf("sent while the breaker was open (%s after opening)", want)
		}
		r.clk.set(opened.Add(want))
		if !r.step() {
			t.Fatalf("no probe %s after opening", want)
		}
		if probe := r.ep.requests()[n]; len(probe.ids()) != 1 {
			t.Fatalf("probe carried %d events, want 1", len(probe.ids()))
		}
		want = min(2*want, breakerMaxProbe)
	}
	if want != breakerMaxProbe {
		t.Fatalf("probe wait %s, want capped at %s", want, breakerMaxProbe)
	}
	for _, id := range ids {
		if got := r.row(id); got.attempts != breakerThreshold || got.state != statePending {
			t.Errorf("%s: %+v, want %d attempts: probes are not counted", id, got, breakerThreshold)
		}
	}
	// The endpoint comes back: the probe closes the breaker and the rest
	// goes out in one batch.
	mu.Lock()
	status = 200
	mu.Unlock()
	r.clk.advance(breakerMaxProbe)
	r.drain()
	if c := r.counts(); c.Pending != 0 || c.Dead != 0 {
		t.Errorf("counts after recovery: %+v", c)
	}
	if m := r.meta(); m["breaker"] != "closed" {
		t.Errorf("status breaker %q, want closed", m["breaker"])
	}
	reqs := r.ep.requests()
	if last := reqs[len(reqs)-1]; len(last.ids()) != 9 {
		t.Errorf("after the probe, %d events in the next batch, want 9", len(last.ids()))
	}
}

func TestBreakerProbeJitter(t *testing.T) {
	// Probe times are spread over [delay/2, delay] so many daemons do not
	// probe in step.
	now := time.Now()
	seen := map[time.Duration]bool{}
	for range 50 {
		d := newDrainer(nil, nil, 1, nil, time.Now)
		d.openBreaker(now)
		w := d.holdUntil().Sub(now)
		if w < breakerFirstProbe/2 || w > breakerFirstProbe {
			t.Fatalf("first probe after %s, want in [%s, %s]", w, breakerFirstProbe/2, breakerFirstProbe)
		}
		seen[w] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct probe waits in 50", len(seen))
	}
}

func TestDeliverBatchBounds(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.add("c", 250, `{"small":true}`)
	r.drain()
	var sizes []int
	for _, req := range r.ep.requests() {
		sizes = append(sizes, len(req.ids()))
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("batches of %v events, want [100 100 50]", sizes)
	}

	r = newRig(t, nil)
	big := `"` + strings.Repeat("x", 100<<10) + `"`
	r.add("b", 12, big)
	huge := `"` + strings.Repeat("y", maxPayload-2) + `"`
	r.add("h", 1, huge)
	r.drain()
	sizes = nil
	for _, req := range r.ep.requests() {
		sizes = append(sizes, len(req.ids()))
		if len(req.raw) > maxBatchBytes && len(req.ids()) > 1 {
			t.Errorf("a body of %d events is %d bytes, over %d", len(req.ids()), len(req.raw), maxBatchBytes)
		}
		if req.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("a %d-byte body was not gzipped", len(req.raw))
		}
	}
	// 100 KiB events: five fit in 512 KiB, a sixth would not; the 1 MiB
	// event goes alone.
	if !slices.Equal(sizes, []int{5, 5, 2, 1}) {
		t.Errorf("batches of %v events, want [5 5 2 1]", sizes)
	}
}

// syncBuffer collects a daemon's log and closes ready at its ready line.
type syncBuffer struct {
	mu    sync.Mutex
	b     strings.Builder
	ready chan struct{}
	once  sync.Once
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	if strings.Contains(s.b.String(), "daemon ready") {
		s.once.Do(func() { close(s.ready) })
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// arrivals records when each event id reached an endpoint, and every event
// in the order it arrived.
type arrivals struct {
	mu   sync.Mutex
	at   map[string]time.Time
	n    map[string]int
	evs  []wireEvent
	wake chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{at: map[string]time.Time{}, n: map[string]int{}, wake: make(chan struct{}, 1)}
}

func (a *arrivals) script(status int) func(int, recorded) answer {
	return func(_ int, req recorded) answer {
		now := time.Now()
		a.mu.Lock()
		for _, id := range req.ids() {
			if a.n[id] == 0 {
				a.at[id] = now
			}
			a.n[id]++
		}
		a.evs = append(a.evs, req.batch.Events...)
		a.mu.Unlock()
		select {
		case a.wake <- struct{}{}:
		default:
		}
		return answer{status: status}
	}
}

// await waits until id has arrived and returns when.
func (a *arrivals) await(tb testing.TB, id string, timeout time.Duration) time.Time {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		at, ok := a.at[id]
		a.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-a.wake:
		case <-deadline:
			tb.Fatalf("event %s did not reach the endpoint within %s", id, timeout)
		}
	}
}

// awaitAll waits until every one of ids has arrived, for up to timeout in
// all, and returns those that have not.
func (a *arrivals) awaitAll(ids []string, timeout time.Duration) (missing []string) {
	deadline := time.After(timeout)
	for {
		missing = missing[:0]
		a.mu.Lock()
		for _, id := range ids {
			if a.n[id] == 0 {
				missing = append(missing, id)
			}
		}
		a.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-a.wake:
		case <-deadline:
			return missing
		}
	}
}

// awaitN waits until n distinct events have arrived, for up to timeout in
// all, and fails the test saying how many did.
func (a *arrivals) awaitN(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		got := len(a.n)
		a.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-a.wake:
		case <-deadline:
			tb.Fatalf("%d of %d events reached the endpoint within %s", got, n, timeout)
		}
	}
}

// awaitEvents waits until done holds for the events that have arrived, in
// the order they arrived, checking again at each arrival, for up to timeout
// in all; it returns the events done held for.
func (a *arrivals) awaitEvents(tb testing.TB, timeout time.Duration, what string, done func([]wireEvent) bool) []wireEvent {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		evs := slices.Clone(a.evs)
		a.mu.Unlock()
		if done(evs) {
			return evs
		}
		select {
		case <-a.wake:
		case <-deadline:
			tb.Fatalf("timed out after %s waiting for %s; %d events arrived", timeout, what, len(evs))
		}
	}
}

// events returns every event that has arrived, in the order it arrived.
func (a *arrivals) events() []wireEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.evs)
}

// mustAwaitAll waits until every one of ids has arrived, for up to timeout
// in all, and fails the test naming those that have not.
func (a *arrivals) mustAwaitAll(tb testing.TB, timeout time.Duration, ids ...string) {
	tb.Helper()
	if missing := a.awaitAll(ids, timeout); len(missing) > 0 {
		tb.Fatalf("events %v did not reach the endpoint within %s", missing, timeout)
	}
}

// counts returns how many times each event id has arrived.
func (a *arrivals) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := make(map[string]int, len(a.n))
	for id, c := range a.n {
		n[id] = c
	}
	return n
}

func (a *arrivals) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[id]
}

func TestInstantWakeUp(t *testing.T) {
	testHome(t)
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	// With the safety net an hour away, only enqueue's wake-up can bring
	// an event to the endpoint within await's bound: the order, not a
	// latency figure, is what this asserts. The figures belong to
	// BenchmarkEnqueueToEndpoint.
	inProcessDaemon(t, "--endpoint", ep.URL, "--tick", "1h")
	ob := mustOutbox(t, mustOpenHome(t, os.Getenv("DIFFLORE_HOME")), time.Now)
	defer ob.Close()
	var lat []time.Duration
	for i := range 5 {
		waitIdle(t, ob)
		id := fmt.Sprintf("wake-%d", i)
		start := time.Now()
		mustCLI(t, "enqueue", "--id", id, `{"i":1}`)
		lat = append(lat, arr.await(t, id, 10*time.Second).Sub(start))
	}
	slices.Sort(lat)
	t.Logf("enqueue→endpoint: %v", lat)
}

// waitIdle waits until the daemon has settled everything it was sent, so
// that the next event finds it idle rather than still in its drain loop.
func waitIdle(tb testing.TB, ob *outbox) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := ob.counts()
		if err == nil && c.Pending+c.Inflight == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("outbox not empty after 10s: %+v %v", c, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkEnqueueToEndpoint measures how long an event takes from the
// start of 'enqueue' to the endpoint, on an idle daemon with the default
// tick (ns/op is the mean of that, since the timer stops between events),
// beside its baseline from the same run: how long enqueue itself took to
// return. Events arrive at random moments, as hooks do.
func BenchmarkEnqueueToEndpoint(b *testing.B) {
	dir := b.TempDir()
	b.Setenv("DIFFLORE_HOME", dir)
	b.Setenv("DIFFLORE_CLOUD_URL", "")
	b.Setenv("DIFFLORE_CLOUD_TOKEN", "")
	arr := newArrivals()
	ep := newEndpoint(b, arr.script(200))
	inProcessDaemon(b, "--endpoint", ep.URL)
	ob := mustOutbox(b, mustOpenHome(b, dir), time.Now)
	defer ob.Close()
	var lat, own []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		waitIdle(b, ob)
		time.Sleep(rand.N(100 * time.Millisecond)) // a random phase of the daemon's tick
		b.StartTimer()
		id := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		var stderr strings.Builder
		if err := runTest(context.Background(), []string{"enqueue", "--id", id, `{"bench":true}`}, strings.NewReader(""), io.Discard, &stderr); err != nil {
			b.Fatalf("enqueue: %v %s", err, stderr.String())
		}
		own = append(own, time.Since(start))
		lat = append(lat, arr.await(b, id, 10*time.Second).Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(own)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(own[len(own)/2]), "enqueue-p50-ms")
	b.ReportMetric(float64(lat[len(lat)/2])/float64(own[len(own)/2]), "x-enqueue")
}

// TestSpilledEventsReachEndpointOnce makes enqueue spill by holding the
// database write-locked, then checks the daemon replays the spilled event
// into the outbox and it reaches the endpoint exactly once.
func TestSpilledEventsReachEndpointOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.mustCLI("enqueue", "--id", "before", `{"n":0}`)
	e.inProcessDaemon("--endpoint", ep.URL)
	arr.await(t, "before", 10*time.Second)

	locker, err := openConn(filepath.Join(home, dbFileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	if err := sqlitex.ExecuteTransient(locker.Conn, "BEGIN IMMEDIATE", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr, code := e.cli("", "enqueue", "--id", "spilled-1", `{"spilled":true}`)
	if code != 0 || stderr != "" {
		t.Fatalf("enqueue on a locked outbox: exit %d, stderr %q; want 0 and nothing on stderr, which the agent would show", code, stderr)
	}
	if out, _, _ := e.cli("", "status"); !strings.Contains(out, "1 spilled") {
		t.Errorf("status does not count the spilled event:\n%s", out)
	}
	// A lower bound only: that enqueue gave the lock its time before it
	// spilled. How fast the hook is belongs to the benchmarks.
	if d := time.Since(start); d < enqueueBusy/2 {
		t.Errorf("enqueue waited %s for the lock, want about %s", d, enqueueBusy)
	}
	if err := sqlitex.ExecuteTransient(locker.Conn, "ROLLBACK", nil); err != nil {
		t.Fatal(err)
	}
	arr.await(t, "spilled-1", 20*time.Second)
	// Wait until the daemon has settled the batch and the spill folder is
	// empty, then make sure a further replay round sends nothing again.
	ob := mustOutbox(t, mustOpenHome(t, home), time.Now)
	defer ob.Close()
	// The acknowledgement and the spill file's removal signal nothing a test can wait on.
	waitFor(t, 20*time.Second, "outbox and spill folder to empty", func() bool {
		c, err := ob.counts()
		files, _ := filepath.Glob(filepath.Join(home, spillDirName, "*.json"))
		return err == nil && c.Pending+c.Inflight == 0 && len(files) == 0
	})
	e.mustCLI("enqueue", "--id", "after", `{"n":2}`)
	arr.await(t, "after", 10*time.Second)
	if n := arr.count("spilled-1"); n != 1 {
		t.Errorf("spilled event reached the endpoint %d times, want once", n)
	}
	var got wireEvent
	for _, req := range ep.requests() {
		for _, e := range req.batch.Events {
			if e.ID == "spilled-1" {
				got = e
			}
		}
	}
	if string(got.Payload) != `{"spilled":true}` || got.Kind != "event" {
		t.Errorf("spilled event arrived as %+v", got)
	}
}

func TestDeliverPauseEndsOnOtherAnswers(t *testing.T) {
	t.Parallel()
	answers := []int{401, 503, 401}
	r := newRig(t, func(n int, _ recorded) answer { return answer{status: answers[min(n, len(answers)-1)]} })
	r.add("e", 1, `{}`)
	r.step() // 401: paused
	r.clk.advance(pauseRetry)
	r.step() // 503: the pause is over, a backoff starts
	if m := r.meta(); m["paused_reason"] != "" {
		t.Errorf("pause still shown after a 503: %q", m["paused_reason"])
	}
	r.clk.advance(time.Hour)
	r.step() // 401 again: a new pause since now
	if m := r.meta(); m["paused_since"] != r.clk.now().Format(time.RFC3339) {
		t.Errorf("second pause since %q, want %s", m["paused_since"], r.clk.now().Format(time.RFC3339))
	}
	if got := r.row("e-00"); got.attempts != 1 {
		t.Errorf("%d attempts, want 1: only the 503 counts", got.attempts)
	}
}

// openBreakerWith503s fails breakerThreshold batches in a row.
func (r *rig) openBreakerWith503s() {
	r.t.Helper()
	for range breakerThreshold {
		at, _, _ := r.ob.nextAvailable()
		if at.After(r.clk.now()) {
			r.clk.set(at)
		}
		r.step()
	}
	if !r.breakerOpen() {
		r.t.Fatal("breaker not open")
	}
	at, _, _ := r.ob.nextAvailable()
	r.clk.set(at)
}

func TestBreakerProbeHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(n int, _ recorded) answer {
		if n < breakerThreshold {
			return answer{status: 503}
		}
		return answer{status: 503, header: map[string]string{"Retry-After": "600"}}
	})
	r.add("e", 2, `{}`)
	r.openBreakerWith503s()
	if !r.step() {
		t.Fatal("no probe")
	}
	probed := r.clk.now()
	r.clk.set(probed.Add(599 * time.Second))
	if r.step() {
		t.Error("probed again before the Retry-After of the last probe")
	}
	r.clk.set(probed.Add(600 * time.Second))
	if !r.step() {
		t.Error("no probe after the Retry-After")
	}
}

func TestBreakerClosesOnAnAnswer(t *testing.T) {
	t.Parallel()
	// A 400 to the probe proves the endpoint is up: the breaker closes and
	// the rest goes out as a batch again.
	r := newRig(t, func(n int, _ recorded) answer {
		switch {
		case n < breakerThreshold:
			return answer{status: 503}
		case n == breakerThreshold:
			return answer{status: 400, body: "bad event"}
		case n == breakerThreshold+1:
			return answer{status: 503}
		}
		return answer{status: 200}
	})
	r.add("e", 4, `{}`)
	r.openBreakerWith503s()
	r.step() // the probe: 400, its event dead-lettered
	if r.breakerOpen() {
		t.Errorf("breaker still open after the endpoint answered 400")
	}
	// The failures in a row were forgotten too: one more 503, to a whole
	// batch again, leaves the breaker closed.
	if !r.step() || len(r.ep.requests()[breakerThreshold+1].ids()) != 3 {
		t.Fatal("no batch of the 3 events left after the 400")
	}
	if r.breakerOpen() {
		t.Errorf("one 503 after the 400 opened the breaker: the failures before it still counted")
	}
	at, _, _ := r.ob.nextAvailable()
	r.clk.set(at)
	r.drain()
	reqs := r.ep.requests()
	if n := len(reqs[len(reqs)-1].ids()); n != 3 {
		t.Errorf("after the 400, a batch of %d events, want 3", n)
	}
	if c := r.counts(); c.Dead != 1 || c.Pending != 0 {
		t.Errorf("counts %+v, want one dead letter and the rest delivered", c)
	}
}

// TestRetriedBatchStaysWhole checks that a batch that failed comes back as
// the same batch, with the same Idempotency-Key, however the backoff is
// jittered: the receiver can then deduplicate a retry that did arrive.
func TestRetriedBatchStaysWhole(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(n int, _ recorded) answer {
		if n == 0 {
			return answer{status: 503}
		}
		return answer{status: 200}
	})
	// Jitter that differs on every call would scatter the batch if each
	// event drew its own delay.
	var calls int
	r.d.jitter = func(x time.Duration) time.Duration { calls++; return x * time.Duration(calls%7) / 7 }
	ids := r.add("whole", 40, `{}`)
	r.drain()
	r.clk.advance(backoffCap + time.Second)
	r.drain()
	reqs := r.ep.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (the batch, then the same batch again)", len(reqs))
	}
	if !slices.Equal(reqs[0].ids(), ids) || !slices.Equal(reqs[1].ids(), ids) {
		t.Errorf("retry sent %v, want the same %d events as the first try", reqs[1].ids(), len(ids))
	}
	if k0, k1 := reqs[0].header.Get("Idempotency-Key"), reqs[1].header.Get("Idempotency-Key"); k0 != k1 {
		t.Errorf("Idempotency-Key changed on retry: %q then %q", k0, k1)
	}
}

// TestWaitsAreCappedWhenRead checks that an event whose retry time lies a
// day ahead (the clock stepped back) waits no longer than the longest wait
// the daemon ever writes: maxWait.
func TestWaitsAreCappedWhenRead(t *testing.T) {
	t.Parallel()
	r := newRig(t, always(answer{status: 200}))
	ids := r.add("far", 3, `{}`)
	setAvailableAt(t, r.ob.conn, r.clk.now().Add(24*time.Hour))
	if r.step() {
		t.Fatal("sent an event that is not due")
	}
	at, ok, err := r.ob.nextAvailable()
	if err != nil || !ok || at.After(r.clk.now().Add(maxWait)) {
		t.Errorf("next wake-up at %s (%v, %v), want within %s of now (%s)", at, ok, err, maxWait, r.clk.now())
	}
	r.clk.advance(maxWait)
	r.drain()
	for _, id := range ids {
		if got := r.row(id); got.state != -1 {
			t.Errorf("%s after waiting the longest backoff: %+v, want delivered", id, got)
		}
	}
}

// TestHoldIsCappedAfterClockStep: a breaker opened just before the clock
// steps back a day holds delivery no longer than the longest wait either.
func TestHoldIsCappedAfterClockStep(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(n int, _ recorded) answer {
		if n < breakerThreshold {
			return answer{status: 503}
		}
		return answer{status: 200}
	})
	r.add("held", 2, `{}`)
	r.openBreakerWith503s()
	r.clk.advance(-24 * time.Hour)
	setAvailableAt(t, r.ob.conn, r.clk.now())
	if r.step() {
		t.Fatal("sent while the breaker is open")
	}
	r.clk.advance(maxWait)
	r.drain()
	if c := r.counts(); c.Pending != 0 {
		t.Errorf("%d events still pending after the longest wait: the breaker's hold, set before the clock stepped back, held them", c.Pending)
	}
}

// TestDrainIgnoresBackoff: drain delivers everything now, events waiting
// for a retry included, however far ahead their retry time lies.
func TestDrainIgnoresBackoff(t *testing.T) {
	dir := testHome(t)
	ep := newEndpoint(t, always(answer{status: 200}))
	for i := range 3 {
		mustCLI(t, "enqueue", "--id", fmt.Sprintf("evt-%d", i), `{}`)
	}
	ob := mustOutbox(t, mustOpenHome(t, dir), time.Now)
	setAvailableAt(t, ob.conn, time.Now().Add(24*time.Hour))
	ob.Close()
	var sum drainSummary
	out := mustCLI(t, "drain", "--endpoint", ep.URL, "--json")
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("drain --json: %v\n%s", err, out)
	}
	if sum.Delivered != 3 || sum.Pending != 0 {
		t.Errorf("drain summary %+v, want all 3 delivered", sum)
	}
}
