package main

import (
	"strconv"
	"testing"
)

// TestFailedCountsWhileBreakerOpen: failed_total counts every event
// delivery that failed, the breaker's probes too: a sink that stays down
// shows its failures growing, not frozen at the moment its breaker
// opened (README: deliveries that failed and are retried).
func TestFailedCountsWhileBreakerOpen(t *testing.T) {
	t.Parallel()
	r := newRig(t, always(answer{status: 503}))
	r.add("e", 10, `{}`)
	r.openBreakerWith503s()
	failed := func() int64 {
		n, _ := strconv.ParseInt(r.meta()[metaFailed], 10, 64)
		return n
	}
	if got := failed(); got != breakerThreshold*10 {
		t.Fatalf("failed %d after %d failed batches of 10, want %d", got, breakerThreshold, breakerThreshold*10)
	}
	for i := 1; i <= 3; i++ {
		at, _, _ := r.ob.nextAvailable()
		if hold := r.d.holdUntil(); hold.After(at) {
			at = hold
		}
		r.clk.set(at)
		n := len(r.ep.requests())
		if !r.step() || len(r.ep.requests()) != n+1 {
			t.Fatalf("probe %d not sent", i)
		}
		if got, want := failed(), int64(breakerThreshold*10+i); got != want {
			t.Errorf("failed %d after %d failed probes, want %d", got, i, want)
		}
	}
}
