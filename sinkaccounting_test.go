package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite/sqlitex"
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

// TestStatusOutboxLineSumsSinks: with several sinks, status's outbox
// line (and outbox.pending in --json) counts what every sink has yet to
// receive, summed over the sinks as the text says, not the first sink's
// alone; the first sink's own figures are shown on a line of their own
// and stay its figures in --metrics.
func TestStatusOutboxLineSumsSinks(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	ob := mustOutbox(t, h, time.Now)
	for i := range 5 {
		if err := ob.insert(fmt.Sprintf("e-%d", i), "test.kind", []byte(`{}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	// The first sink delivered two of the five; the second none.
	if err := sqlitex.ExecuteTransient(ob.conn, `UPDATE events SET state = 3 WHERE id IN ('e-0', 'e-1')`, nil); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	var rep statusReport
	if err := fillOutboxStatus(h, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outbox.Pending != 3+5 {
		t.Errorf("outbox.pending %d, want 8: 3 for the first sink and 5 for the second", rep.Outbox.Pending)
	}
	var out strings.Builder
	printStatus(&out, &rep, false)
	if !strings.Contains(out.String(), "outbox:   8 pending, 0 inflight, 0 dead, summed over 2 sinks") {
		t.Errorf("status says:\n%s\nwant the outbox line to sum the two sinks and say so", out.String())
	}
	if !regexpMatch(`(?m)^sink default: .*3 pending`, out.String()) || !regexpMatch(`(?m)^sink second: .*5 pending`, out.String()) {
		t.Errorf("status says:\n%s\nwant a line for each sink with its own pending", out.String())
	}
	for _, m := range metricsOf(&rep, "default", rep.meta) {
		if want := map[string]int64{"default": 3, "second": 5}[m.name]; m.pending != want {
			t.Errorf("metrics: sink %s pending %d, want %d", m.name, m.pending, want)
		}
	}
}
