package main

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// run calls drainer.run once, failing the test on an error.
func (r *rig) run(ctx context.Context) bool {
	r.t.Helper()
	sent, err := r.d.run(ctx, ctx)
	if err != nil {
		r.t.Fatalf("run: %v", err)
	}
	return sent
}

// sentIDs lists the event ids of every request the endpoint received, in
// the order received.
func (r *rig) sentIDs() []string {
	var ids []string
	for _, rec := range r.ep.requests() {
		ids = append(ids, rec.ids()...)
	}
	return ids
}

// overlapProbe makes a drainer's second claim meet the endpoint's first
// request: the claim waits until the request has arrived, and the
// request's answer waits until the claim. A drainer that claims its next
// batch only after the answer leaves the request waiting until the test
// gives up, which it reports.
type overlapProbe struct {
	t            *testing.T
	arrived      chan struct{}
	claimedAhead chan struct{}
	claims       atomic.Int32
}

func newOverlapProbe(t *testing.T) *overlapProbe {
	return &overlapProbe{t: t, arrived: make(chan struct{}), claimedAhead: make(chan struct{})}
}

// atRequest is called by the endpoint's script for request n.
func (p *overlapProbe) atRequest(n int) {
	if n != 0 {
		return
	}
	close(p.arrived)
	select {
	case <-p.claimedAhead:
	case <-time.After(10 * time.Second):
		p.t.Error("no batch was claimed while the first request was on the wire")
	}
}

// pauseAt is the drainer's pause point.
func (p *overlapProbe) pauseAt(step string) {
	if step != pauseClaim || p.claims.Add(1) != 2 {
		return
	}
	select {
	case <-p.arrived:
	case <-time.After(10 * time.Second):
		p.t.Error("the first request never arrived")
	}
	close(p.claimedAhead)
}

// TestRunClaimsNextWhileSending: run claims the next batch while a request
// is on the wire (overlapProbe), and every event still arrives once, in
// queue order, with nothing left claimed.
func TestRunClaimsNextWhileSending(t *testing.T) {
	t.Parallel()
	probe := newOverlapProbe(t)
	r := newRig(t, func(n int, _ recorded) answer {
		probe.atRequest(n)
		return answer{status: 200}
	})
	r.d.pauseAt = probe.pauseAt
	ids := r.add("ev", 2*defaultBatch+defaultBatch/2, `{"n":1}`)
	// A run ends after maxRun; the daemon's loop runs again until nothing
	// is sent.
	for i := 0; r.run(context.Background()); i++ {
		if i > 10 {
			t.Fatal("still sending after 10 runs")
		}
	}
	if got := r.sentIDs(); !slices.Equal(got, ids) {
		t.Errorf("the endpoint got %d events (%v…), want the %d queued, once each, in order", len(got), got[:min(len(got), 3)], len(ids))
	}
	if c := r.counts(); c.Pending != 0 || c.Inflight != 0 {
		t.Errorf("after run: %+v, want nothing pending or in flight", c)
	}
	if n := len(r.ep.requests()); n != 3 {
		t.Errorf("%d requests, want 3 batches", n)
	}
}

// TestRunReleasesClaimedAheadOnPause pauses delivery with the answer to
// the first request of a backlog (401) after run claimed the next batch
// (overlapProbe): that batch was never sent, so it goes back pending, its
// attempt given back, at the head of the queue, and is the first batch
// sent when the pause ends.
func TestRunReleasesClaimedAheadOnPause(t *testing.T) {
	t.Parallel()
	probe := newOverlapProbe(t)
	r := newRig(t, func(n int, _ recorded) answer {
		probe.atRequest(n)
		if n == 0 {
			return answer{status: 401}
		}
		return answer{status: 200}
	})
	r.d.pauseAt = probe.pauseAt
	ids := r.add("ev", 2*defaultBatch, `{"n":1}`)
	r.run(context.Background())
	if n := len(r.ep.requests()); n != 1 {
		t.Fatalf("%d requests after a 401, want 1", n)
	}
	if c := r.counts(); c.Inflight != 0 || c.Pending != int64(len(ids)) {
		t.Fatalf("after the 401: %+v, want all %d pending, none in flight", c, len(ids))
	}
	if ahead := r.row(ids[defaultBatch]); ahead.attempts != 0 || ahead.state != 0 {
		t.Errorf("the batch claimed ahead: %+v, want pending with no attempt", ahead)
	}
	r.clk.advance(pauseRetry)
	r.run(context.Background())
	reqs := r.ep.requests()
	if len(reqs) < 2 || !slices.Equal(reqs[1].ids(), ids[defaultBatch:]) {
		t.Errorf("the first request after the pause carried %v…, want the %d events claimed ahead", reqs[len(reqs)-1].ids()[:1], defaultBatch)
	}
}

// TestRunStopGivesBothBack stops the drainer while a request hangs and the
// next batch is claimed (overlapProbe): both batches go back pending with
// no attempt counted, and nothing stays in flight.
func TestRunStopGivesBothBack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probe := newOverlapProbe(t)
	r := newRig(t, func(n int, _ recorded) answer {
		probe.atRequest(n)
		cancel()
		return answer{hang: true}
	})
	r.d.pauseAt = probe.pauseAt
	ids := r.add("ev", 2*defaultBatch, `{"n":1}`)
	r.run(ctx)
	if c := r.counts(); c.Inflight != 0 || c.Pending != int64(len(ids)) {
		t.Fatalf("after the stop: %+v, want all %d pending, none in flight", c, len(ids))
	}
	for _, id := range []string{ids[0], ids[defaultBatch]} {
		if rw := r.row(id); rw.attempts != 0 {
			t.Errorf("%s: %+v, want its attempt given back", id, rw)
		}
	}
}

// ackGate is a drainer's queue whose ack of the first batch waits until
// the endpoint has the second request.
type ackGate struct {
	queue
	t       *testing.T
	second  chan struct{} // closed when the second request arrives
	settled atomic.Bool   // the first batch's ack has run
}

func (g *ackGate) ack(token string, events []event) error {
	if g.settled.CompareAndSwap(false, true) {
		select {
		case <-g.second:
		case <-time.After(10 * time.Second):
			g.t.Error("the first batch was settled before the second was sent")
		}
	}
	return g.queue.ack(token, events)
}

// TestRunSendsNextBeforeSettling: when the answer delivered a batch and
// the next is claimed, run sends the next before it settles the one
// answered (the first ack waits for the second request; a drainer that
// settles first leaves it waiting until the test gives up). Everything
// is still settled once, in order.
func TestRunSendsNextBeforeSettling(t *testing.T) {
	t.Parallel()
	var gate *ackGate
	r := newRig(t, func(n int, _ recorded) answer {
		if n == 1 {
			close(gate.second)
		}
		return answer{status: 200}
	})
	gate = &ackGate{queue: r.d.ob, t: t, second: make(chan struct{})}
	r.d.ob = gate
	ids := r.add("ev", 2*defaultBatch, `{"n":1}`)
	for i := 0; r.run(context.Background()); i++ {
		if i > 10 {
			t.Fatal("still sending after 10 runs")
		}
	}
	if got := r.sentIDs(); !slices.Equal(got, ids) {
		t.Errorf("the endpoint got %d events, want the %d queued, once each, in order", len(got), len(ids))
	}
	if c := r.counts(); c.Pending != 0 || c.Inflight != 0 {
		t.Errorf("after run: %+v, want nothing pending or in flight", c)
	}
}

// TestRunStopsAtTheNextAnswer stops the daemon (run's stop context) while
// a request is on the wire and the next batch is claimed (overlapProbe):
// the answered batch is settled, no further request goes, and the batch
// claimed ahead goes back pending with its attempt given back.
func TestRunStopsAtTheNextAnswer(t *testing.T) {
	t.Parallel()
	stop, stopNow := context.WithCancel(context.Background())
	defer stopNow()
	probe := newOverlapProbe(t)
	r := newRig(t, func(n int, _ recorded) answer {
		probe.atRequest(n)
		stopNow()
		return answer{status: 200}
	})
	r.d.pauseAt = probe.pauseAt
	ids := r.add("ev", 2*defaultBatch, `{"n":1}`)
	if _, err := r.d.run(stop, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(r.ep.requests()); n != 1 {
		t.Errorf("%d requests after the stop, want 1", n)
	}
	if c := r.counts(); c.Inflight != 0 || c.Pending != defaultBatch {
		t.Errorf("after the stop: %+v, want the %d claimed ahead pending, none in flight", c, defaultBatch)
	}
	if rw := r.row(ids[defaultBatch]); rw.state != 0 || rw.attempts != 0 {
		t.Errorf("the batch claimed ahead: %+v, want pending with no attempt", rw)
	}
}

// TestRunClaimsNothingBehindARetry: a batch on a later attempt (given
// back by a daemon that died while it was on the wire) gets no batch
// claimed behind it, so that a batch that kills the daemon costs no other
// batch an attempt.
func TestRunClaimsNothingBehindARetry(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(n int, _ recorded) answer { return answer{status: 401} })
	ids := r.add("ev", 2*defaultBatch, `{"n":1}`)
	if _, _, err := r.ob.claim(defaultBatch, maxBatchBytes, claimLease); err != nil {
		t.Fatal(err)
	}
	if err := r.ob.resetInflight(); err != nil { // the daemon died
		t.Fatal(err)
	}
	var claims atomic.Int32
	r.d.pauseAt = func(step string) {
		if step == pauseClaim {
			claims.Add(1)
		}
	}
	r.run(context.Background())
	if n := claims.Load(); n != 1 {
		t.Errorf("%d claims while the batch sent again was on the wire, want 1", n)
	}
	if rw := r.row(ids[defaultBatch]); rw.attempts != 0 {
		t.Errorf("the batch behind: %+v, want no attempt", rw)
	}
}

// TestRunClaimAheadLeavesTheBatchOnTheWire: the clock steps past the lease
// of the batch being sent (a suspend, a clock step); a claim behind it
// would take that batch back as one whose lease ended and send it again in
// the same run. No event may go twice.
func TestRunClaimAheadLeavesTheBatchOnTheWire(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.add("ev", 2*defaultBatch, `{"n":1}`)
	var stepped atomic.Bool
	r.d.pauseAt = func(step string) {
		if step == pauseSend && stepped.CompareAndSwap(false, true) {
			r.clk.advance(claimLease + time.Second)
		}
	}
	for i := 0; r.run(context.Background()); i++ {
		if i > 10 {
			t.Fatal("still sending after 10 runs")
		}
	}
	seen := map[string]int{}
	for _, id := range r.sentIDs() {
		if seen[id]++; seen[id] == 2 {
			t.Errorf("%s was sent twice", id)
		}
	}
	if len(seen) != 2*defaultBatch {
		t.Errorf("%d events sent, want %d", len(seen), 2*defaultBatch)
	}
}
