//go:build unix

package main

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// hangFirst answers the first request by hanging until the client goes
// away, and every later one with 200.
func hangFirst() func(int, recorded) answer {
	return func(n int, _ recorded) answer {
		if n == 0 {
			return answer{hang: true}
		}
		return answer{status: 200}
	}
}

func attemptsOf(t *testing.T, dir string, ids []string) []int {
	t.Helper()
	ob := mustOutbox(t, mustOpenHome(t, dir), time.Now)
	defer ob.Close()
	var out []int
	for _, id := range ids {
		out = append(out, rowOf(t, ob.conn, id).attempts)
	}
	return out
}

// TestKill9InFlightResendsSameBatch kills the daemon while its request is
// in flight: the next daemon sends the same events again, with the same ids
// and the same Idempotency-Key, so the receiver can deduplicate.
func TestKill9InFlightResendsSameBatch(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	ids := []string{"k-1", "k-2", "k-3"}
	for _, id := range ids {
		e.mustCLI("enqueue", "--id", id, `{"k":true}`)
	}
	ep := newEndpoint(t, hangFirst())
	d := e.startDaemon("--endpoint", ep.URL)
	first := ep.next(t, 10*time.Second)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 10*time.Second)
	if c := outboxCounts(t, dir); c.Inflight != 3 {
		t.Fatalf("after kill -9: %+v, want the 3 events still claimed", c)
	}

	e.startDaemon("--endpoint", ep.URL)
	second := ep.next(t, 10*time.Second)
	if !slices.Equal(first.ids(), ids) || !slices.Equal(second.ids(), ids) {
		t.Errorf("sent %v, then %v; want %v both times", first.ids(), second.ids(), ids)
	}
	if k1, k2 := first.header.Get("Idempotency-Key"), second.header.Get("Idempotency-Key"); k1 == "" || k1 != k2 {
		t.Errorf("Idempotency-Key %q, then %q; want the same", k1, k2)
	}
	for i := range second.batch.Events {
		if a1, a2 := first.batch.Events[i].Attempt, second.batch.Events[i].Attempt; a1 != 1 || a2 != 2 {
			t.Errorf("attempts %d then %d, want 1 then 2", a1, a2)
		}
		if string(second.batch.Events[i].Payload) != `{"k":true}` {
			t.Errorf("payload resent as %s", second.batch.Events[i].Payload)
		}
	}
	// The acknowledgement after the endpoint's answer signals nothing a test can wait on.
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		c := outboxCounts(t, dir)
		return c.Pending+c.Inflight+c.Dead == 0
	})
}

// TestSIGTERMWhileEndpointHangs: the daemon exits within stop's grace
// period, gives its claims back uncounted, and the next run delivers them.
func TestSIGTERMWhileEndpointHangs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	ids := []string{"t-1", "t-2"}
	for _, id := range ids {
		e.mustCLI("enqueue", "--id", id, `{}`)
	}
	ep := newEndpoint(t, hangFirst())
	d := e.startDaemon("--endpoint", ep.URL)
	first := ep.next(t, 10*time.Second)
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const grace = 10 * time.Second // 'difflore stop' default
	if err := d.wait(t, grace); err != nil {
		t.Errorf("daemon exit after SIGTERM: %v\n%s", err, d.log)
	}
	took := time.Since(start)
	if took < quickWaits().shutdownGrace/2 {
		// It should have given the request in flight a chance to finish.
		t.Errorf("daemon exited %s after SIGTERM, before giving the request a chance", took)
	}
	c := outboxCounts(t, dir)
	if c.Pending != 2 || c.Inflight != 0 || c.Dead != 0 {
		t.Errorf("after SIGTERM: %+v, want both events pending again", c)
	}
	if got := attemptsOf(t, dir, ids); !slices.Equal(got, []int{0, 0}) {
		t.Errorf("attempts after a cancelled request: %v, want [0 0]", got)
	}

	e.startDaemon("--endpoint", ep.URL)
	second := ep.next(t, 10*time.Second)
	if !slices.Equal(second.ids(), first.ids()) || second.header.Get("Idempotency-Key") != first.header.Get("Idempotency-Key") {
		t.Errorf("next run sent %v, want %v with the same key", second.ids(), first.ids())
	}
	if second.batch.Events[0].Attempt != 1 {
		t.Errorf("next run sent attempt %d, want 1: the cancelled one did not count", second.batch.Events[0].Attempt)
	}
	// The acknowledgement after the endpoint's answer signals nothing a test can wait on.
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		c := outboxCounts(t, dir)
		return c.Pending+c.Inflight+c.Dead == 0
	})
}
