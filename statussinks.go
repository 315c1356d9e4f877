package main

import (
	"strconv"
	"time"
)

// With several sinks, status's outbox line (and outbox.pending,
// inflight, dead and oldest_pending_age_seconds in --json) counts what
// every sink has yet to receive, has in flight and has dead-lettered,
// summed over the sinks: an event two sinks wait for counts twice, once
// for each, so that the line is the sum of the sinks' lines below it and
// no sink's backlog hides behind another's. The line says so ("summed
// over N sinks"), and --json gives the number of sinks as
// outbox.summed_over_sinks. The oldest pending age is the oldest over
// every sink. The first sink's own figures, which the line shows alone
// with one sink, are outbox.first_sink, and its own status line.

// sumSinks adds the sinks beyond the first to the outbox's counts,
// keeping the first sink's own in rep.Outbox.FirstSink. m is the meta
// table, where the first sink's drainer records its status.
func sumSinks(rep *statusReport, m map[string]string, running bool) {
	if len(rep.Sinks) == 0 {
		return
	}
	o := &rep.Outbox
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	first := sinkStatus{Name: defaultSinkName, Endpoint: m["endpoint"], Pending: o.Pending, Inflight: o.Inflight, Dead: o.Dead,
		OldestPendingAgeSeconds: o.OldestPendingAgeSeconds, LastDeliveryAt: m["last_delivery_at"], LastError: m["last_error"],
		Delivered: n(metaDelivered), Failed: n(metaFailed), DeadLettered: n(metaBuried), Evicted: o.Evicted,
		State: sinkState(m["paused_reason"], m["breaker"], m["last_error"], m["last_attempt_at"], m["last_delivery_at"])}
	if !running {
		first.State = "stopped"
	}
	for _, s := range rep.Sinks {
		first.Evicted -= s.Evicted // evicted_events counts every sink's
		o.Pending += s.Pending
		o.Inflight += s.Inflight
		o.Dead += s.Dead
		if s.Pending > 0 && s.OldestPendingAgeSeconds > o.OldestPendingAgeSeconds {
			o.OldestPendingAgeSeconds = s.OldestPendingAgeSeconds
			o.OldestPending = time.Now().Add(-time.Duration(s.OldestPendingAgeSeconds * float64(time.Second)))
		}
	}
	first.Evicted = max(first.Evicted, 0)
	o.FirstSink = &first
	o.SummedOverSinks = 1 + len(rep.Sinks)
}
