package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"
)

// fillSession queues n events shaped as a Claude Code session: turns of a
// prompt, four tool calls (a start and an end each) and a stop, so that
// nearly every event opens or closes a span.
func fillSession(b *testing.B, ob *outbox, ids *benchIDs, session string, n int) {
	b.Helper()
	now := time.Now()
	err := ob.immediate(func() error {
		for i := range n {
			var kind, payload string
			turn := i / 10
			switch step := i % 10; {
			case step == 0:
				kind = "claude.UserPromptSubmit"
				payload = fmt.Sprintf(`{"session_id":%q,"prompt_id":"p-%d","hook_event_name":"UserPromptSubmit","prompt":"run the tests"}`, session, turn)
			case step == 9:
				kind = "claude.Stop"
				payload = fmt.Sprintf(`{"session_id":%q,"prompt_id":"p-%d","hook_event_name":"Stop","stop_hook_active":false}`, session, turn)
			default:
				call := (step - 1) / 2
				kind = "claude.PreToolUse"
				if (step-1)%2 == 1 {
					kind = "claude.PostToolUse"
				}
				payload = fmt.Sprintf(`{"session_id":%q,"prompt_id":"p-%d","hook_event_name":%q,"tool_name":"Bash",`+
					`"tool_input":{"command":"go test ./...","description":"Run the tests"},"tool_use_id":"toolu_%d_%d",`+
					`"tool_response":{"stdout":"ok","stderr":"","interrupted":false},"cwd":"/home/dev/src/difflore"}`,
					session, turn, kind[len("claude."):], turn, call)
			}
			if err := ob.insert(ids.next(), kind, []byte(payload), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDrainSpans delivers Claude-shaped sessions to a loopback OTLP
// endpoint in protobuf, logs and the spans built from them (events/s),
// beside the raw claim + delete rate of the same events in the same run
// and outbox (raw-events/s; target: ≥ 0.5×, x-raw), and the same delivery
// without spans (logs-events/s, x-logs: what span building costs).
func BenchmarkDrainSpans(b *testing.B) {
	ob, _ := newBenchOutbox(b)
	srv, requests := benchEndpoint(b)
	u, _ := url.Parse("otlp+" + srv.URL)
	s := newOTLPSink(u, "otlp+"+srv.URL, "", "bench", otlpOptions{name: "default", protocol: protocolProtobuf})
	d := newDrainer(ob, s, defaultBatch, slog.New(slog.DiscardHandler), time.Now)
	logsOnly := newDrainer(ob, newOTLPSink(u, "otlp+"+srv.URL, "", "bench", otlpOptions{name: "logs", protocol: protocolProtobuf, noTraces: true}),
		defaultBatch, slog.New(slog.DiscardHandler), time.Now)
	ctx := context.Background()
	var ids benchIDs
	const round = 10 * defaultBatch
	var tDrain, tRaw, tLogs time.Duration
	var nDrain, nRaw, nLogs, sessions int
	step := func(d *drainer) {
		for {
			sent, err := d.run(ctx, ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !sent {
				return
			}
		}
	}
	for b.Loop() {
		b.StopTimer()
		sessions++
		fillSession(b, ob, &ids, fmt.Sprintf("session-%d", sessions), round)
		before := requests.Load()
		b.StartTimer()
		t0 := time.Now()
		step(d)
		tDrain += time.Since(t0)
		nDrain += round
		b.StopTimer()
		if reqs := requests.Load() - before; reqs != 2*round/defaultBatch {
			b.Fatalf("%d requests for %d events: want logs and spans for each batch", reqs, round)
		}
		sessions++
		fillSession(b, ob, &ids, fmt.Sprintf("session-%d", sessions), round)
		t0 = time.Now()
		nRaw += drainRaw(b, ob, defaultBatch)
		tRaw += time.Since(t0)
		sessions++
		fillSession(b, ob, &ids, fmt.Sprintf("session-%d", sessions), round)
		t0 = time.Now()
		step(logsOnly)
		tLogs += time.Since(t0)
		nLogs += round
		b.StartTimer()
	}
	drain := float64(nDrain) / tDrain.Seconds()
	raw := float64(nRaw) / tRaw.Seconds()
	b.ReportMetric(drain, "events/s")
	b.ReportMetric(raw, "raw-events/s")
	b.ReportMetric(drain/raw, "x-raw")
	logs := float64(nLogs) / tLogs.Seconds()
	b.ReportMetric(logs, "logs-events/s")
	b.ReportMetric(drain/logs, "x-logs")
}
