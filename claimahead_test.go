package main

import (
	"slices"
	"testing"
)

// TestClaimAheadGivenBack: the batch a delivered batch's settlement claimed
// goes back untried when the drainer stops (giveBackNext), its attempt
// given back, and the next claim sends it whole, once.
func TestClaimAheadGivenBack(t *testing.T) {
	t.Parallel()
	r := newRig(t, always(answer{status: 200}))
	ids := r.add("e", defaultBatch+30, `{"n":1}`)
	if !r.step() {
		t.Fatal("nothing sent")
	}
	if c := r.counts(); c.Inflight != 30 || c.Pending != 0 {
		t.Fatalf("after the first batch: %+v, want the other 30 claimed ahead", c)
	}
	if err := r.d.giveBackNext(); err != nil {
		t.Fatal(err)
	}
	if c := r.counts(); c.Inflight != 0 || c.Pending != 30 {
		t.Fatalf("given back: %+v, want 30 pending", c)
	}
	if rw := r.row(ids[defaultBatch]); rw.attempts != 0 {
		t.Fatalf("given back: %d attempts, want 0 (never sent)", rw.attempts)
	}
	r.drain()
	reqs := r.ep.requests()
	if len(reqs) != 2 || !slices.Equal(reqs[1].ids(), ids[defaultBatch:]) {
		t.Fatalf("%d requests; want the first batch, then the rest whole", len(reqs))
	}
	if c := r.counts(); c.Pending+c.Inflight+c.Dead != 0 {
		t.Fatalf("left %+v", c)
	}
}

// TestClaimAheadSinkGone: a batch claimed ahead is not sent once the sink
// went (a reload removed it): the step gives it back untried.
func TestClaimAheadSinkGone(t *testing.T) {
	t.Parallel()
	r := newRig(t, always(answer{status: 200}))
	r.add("e", defaultBatch+5, `{"n":1}`)
	r.step()
	r.d.sink = nil
	if r.step() {
		t.Fatal("sent without a sink")
	}
	if c := r.counts(); c.Inflight != 0 || c.Pending != 5 {
		t.Fatalf("%+v, want the 5 claimed ahead pending again", c)
	}
}
