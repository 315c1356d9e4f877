package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// 'difflore status --metrics' prints the sinks' figures as OpenMetrics
// text, for node_exporter's textfile collector or any scraper of a file:
// a fleet watches difflore without a port open on each machine. The
// samples are read from the outbox as status reads them; a counter is
// what the outbox has counted since the sink was added (the first sink:
// since the outbox was made).

// sinkMetrics are one sink's figures.
type sinkMetrics struct {
	name                               string
	pending, inflight, dead            int64
	oldestAge                          float64
	delivered, failed, buried, evicted int64
}

// metricsOf gathers every sink's figures from a status report and the
// meta table: the first sink from the report's outbox and the meta
// counters, the others from their sinks rows.
func metricsOf(rep *statusReport, primary string, m map[string]string) []sinkMetrics {
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	first := sinkMetrics{name: primary, pending: rep.Outbox.Pending, inflight: rep.Outbox.Inflight, dead: rep.Outbox.Dead,
		oldestAge: rep.Outbox.OldestPendingAgeSeconds, delivered: n(metaDelivered), failed: n(metaFailed),
		buried: n(metaBuried), evicted: rep.Outbox.Evicted}
	if f := rep.Outbox.FirstSink; f != nil {
		// The outbox's counts are summed over the sinks (statussinks.go).
		first.pending, first.inflight, first.dead, first.oldestAge = f.Pending, f.Inflight, f.Dead, f.OldestPendingAgeSeconds
	}
	out := []sinkMetrics{first}
	for _, s := range rep.Sinks {
		out[0].evicted -= s.Evicted // evicted_events counts every sink's
		out = append(out, sinkMetrics{name: s.Name, pending: s.Pending, inflight: s.Inflight, dead: s.Dead,
			oldestAge: s.OldestPendingAgeSeconds, delivered: s.Delivered, failed: s.Failed, buried: s.DeadLettered, evicted: s.Evicted})
	}
	sort.SliceStable(out[1:], func(i, j int) bool { return out[1+i].name < out[1+j].name })
	return out
}

// writeMetrics writes the figures as OpenMetrics text, ending in # EOF.
func writeMetrics(w io.Writer, up bool, sinks []sinkMetrics) error {
	var b strings.Builder
	family := func(name, typ, help string, v func(s sinkMetrics) string) {
		sample := name
		if typ == "counter" {
			sample += "_total"
		}
		fmt.Fprintf(&b, "# TYPE %s %s\n# HELP %s %s\n", name, typ, name, help)
		for _, s := range sinks {
			fmt.Fprintf(&b, "%s{sink=\"%s\"} %s\n", sample, labelValue(s.name), v(s))
		}
	}
	i := func(f func(s sinkMetrics) int64) func(s sinkMetrics) string {
		return func(s sinkMetrics) string { return strconv.FormatInt(f(s), 10) }
	}
	upValue := 0
	if up {
		upValue = 1
	}
	fmt.Fprintf(&b, "# TYPE difflore_daemon_up gauge\n# HELP difflore_daemon_up Whether the delivery daemon of this data home runs.\ndifflore_daemon_up %d\n", upValue)
	family("difflore_sink_pending", "gauge", "Events the sink has yet to receive.", i(func(s sinkMetrics) int64 { return s.pending }))
	family("difflore_sink_inflight", "gauge", "Events in a request to the sink now.", i(func(s sinkMetrics) int64 { return s.inflight }))
	family("difflore_sink_oldest_pending_age_seconds", "gauge", "Age of the oldest event the sink has yet to receive; 0 with none.",
		func(s sinkMetrics) string { return strconv.FormatFloat(s.oldestAge, 'f', 3, 64) })
	family("difflore_sink_dead", "gauge", "Dead letters the sink holds.", i(func(s sinkMetrics) int64 { return s.dead }))
	family("difflore_sink_delivered", "counter", "Events the sink acknowledged.", i(func(s sinkMetrics) int64 { return s.delivered }))
	family("difflore_sink_failed", "counter", "Event deliveries to the sink that failed and will be retried, breaker probes included.", i(func(s sinkMetrics) int64 { return s.failed }))
	family("difflore_sink_dead_lettered", "counter", "Events the sink refused for good.", i(func(s sinkMetrics) int64 { return s.buried }))
	family("difflore_sink_evicted", "counter", "Events evicted before the sink received them, each reported to it by a gap.", i(func(s sinkMetrics) int64 { return s.evicted }))
	b.WriteString("# EOF\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// labelValue escapes a label value as the text formats want: a sink's name
// holds none of these, but an outbox may hold a name from elsewhere.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
