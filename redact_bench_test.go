package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// secretPayload is a typical hook event that holds secrets: a Bash
// 'cat .env' with a database password and an AWS key.
var secretPayload = []byte(`{"session_id":"6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162","hook_event_name":"PostToolUse",` +
	`"tool_name":"Bash","tool_input":{"command":"cat .env","description":"Show the environment file"},` +
	`"tool_response":{"stdout":"APP_ENV=production\nDB_PASSWORD=Xk29fj3kLq0p\nAWS_ACCESS_KEY_ID=AKIAQ3EGZ7TNW5YB4HXR\nPORT=8080\n","stderr":"","interrupted":false},` +
	`"cwd":"/home/dev/src/difflore","transcript_path":"/home/dev/.claude/projects/difflore/6f1c2a9e.jsonl"}`)

// bigPayload is a 1 MiB Read of a source file: code and prose with the
// words the name rules look for, and two secrets in it.
func bigPayload() []byte {
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20-512; i++ {
		fmt.Fprintf(&sb, "// line %d: the token bucket refills; maxTokens caps it (see password_reset.go)\n", i)
		fmt.Fprintf(&sb, "func handler%d(w http.ResponseWriter, r *http.Request) { token := r.Header.Get(\"X-Token\"); _ = token }\n", i)
		if i == 1000 {
			sb.WriteString("const apiKey = \"sk-proj-Tq83hfkeL0aPz9QwXv7BnMmRkd2LsPqW8e1Yc4Hz6Jt0\"\n")
		}
		if i == 5000 {
			sb.WriteString("// curl -H \"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIzNDU2\"\n")
		}
	}
	p, _ := json.Marshal(map[string]any{"session_id": "6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162", "hook_event_name": "PostToolUse",
		"tool_name": "Read", "tool_input": map[string]any{"file_path": "/home/dev/src/app/server.go"},
		"tool_response": map[string]any{"type": "text", "file": map[string]any{"filePath": "/home/dev/src/app/server.go", "content": sb.String()}}})
	return p
}

// BenchmarkRedact measures redaction of one payload (MB/s): a typical hook
// event without a secret, one with two, a 1 MiB Read and a .env of
// 50,000 passwords.
func BenchmarkRedact(b *testing.B) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		payload []byte
	}{
		{"typical", benchPayload},
		{"typical-secrets", secretPayload},
		{"1MiB", bigPayload()},
		// A .env of 50,000 passwords: overlaps among the spans are resolved
		// after a sort, not by comparing each with all the others.
		{"many-secrets", []byte(`{"stdout":"` + strings.Repeat(`DB_PASSWORD=abcdefg1\n`, 50000) + `"}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.payload)))
			found := 0
			for b.Loop() {
				r.payload(bc.payload, func(string) { found++ })
			}
			b.ReportMetric(float64(found)/float64(b.N), "secrets/op")
		})
	}
}

// BenchmarkCompileRules measures what the first redactor of a process
// pays, once, to compile the built-in rules; enqueue never pays it.
func BenchmarkCompileRules(b *testing.B) {
	for b.Loop() {
		compileBuiltinRules()
	}
}

// BenchmarkDrainRedact delivers queued events to a loopback endpoint as
// BenchmarkDrain does, with redaction on (events/s) and off (off-events/s)
// in the same run and outbox, beside the raw claim + delete rate
// (raw-events/s; target: redacted drain ≥ 0.5×, x-raw), and the share of
// the redacted drain's time that redacting the same events alone takes
// (redact-share). The events are benchPayload, which holds no secret, and
// secretPayload, which holds two, so that every event has something
// replaced.
func BenchmarkDrainRedact(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload []byte
	}{
		{"typical", benchPayload},
		{"secrets", secretPayload},
	} {
		b.Run(bc.name, func(b *testing.B) { benchDrainRedact(b, bc.payload) })
	}
}

func benchDrainRedact(b *testing.B, payload []byte) {
	ob, _ := newBenchOutbox(b)
	srv, requests := benchEndpoint(b)
	s, err := parseEndpoint(srv.URL, "", "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	on := newDrainer(ob, s, defaultBatch, log, time.Now)
	off := newDrainer(ob, s, defaultBatch, log, time.Now)
	if err := off.setRedaction(redactOptions{off: true}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	deliver := func(d *drainer) {
		before := requests.Load()
		for {
			sent, err := d.run(ctx, ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !sent {
				break
			}
		}
		if reqs := requests.Load() - before; reqs != round/defaultBatch {
			b.Fatalf("%d requests for %d events in batches of %d", reqs, round, defaultBatch)
		}
	}
	// The same events redacted alone, as deliver does before it sends
	// them: redact-share is that time's share of a redacted drain's.
	batch := make([]event, round)
	for i := range batch {
		batch[i] = event{ID: fmt.Sprintf("r%d", i), Kind: "event", Payload: payload}
	}
	var ids benchIDs
	var tOn, tOff, tRaw, tRedact time.Duration
	var nOn, nOff, nRaw int
	for b.Loop() {
		b.StopTimer()
		fillPayload(b, ob, &ids, round, payload)
		b.StartTimer()
		t0 := time.Now()
		deliver(on)
		tOn += time.Since(t0)
		nOn += round

		b.StopTimer()
		fillPayload(b, ob, &ids, round, payload)
		t0 = time.Now()
		deliver(off)
		tOff += time.Since(t0)
		nOff += round

		fillPayload(b, ob, &ids, round, payload)
		t0 = time.Now()
		nRaw += drainRaw(b, ob, defaultBatch)
		tRaw += time.Since(t0)

		t0 = time.Now()
		on.redact.events(batch)
		tRedact += time.Since(t0)
		b.StartTimer()
	}
	rOn := float64(nOn) / tOn.Seconds()
	rOff := float64(nOff) / tOff.Seconds()
	raw := float64(nRaw) / tRaw.Seconds()
	b.ReportMetric(rOn, "events/s")
	b.ReportMetric(rOff, "off-events/s")
	b.ReportMetric(raw, "raw-events/s")
	b.ReportMetric(rOn/raw, "x-raw")
	b.ReportMetric(rOn/rOff, "x-off")
	b.ReportMetric(tRedact.Seconds()/tOn.Seconds(), "redact-share")
}

// round is how many events BenchmarkDrainRedact delivers each time.
const round = 10 * defaultBatch

// fillPayload queues n events holding payload in one transaction.
func fillPayload(b *testing.B, ob *outbox, ids *benchIDs, n int, payload []byte) {
	b.Helper()
	now := time.Now()
	err := ob.immediate(func() error {
		for range n {
			if err := ob.insert(ids.next(), "event", payload, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRedactAdversarial redacts, in the same run, plain payloads (a
// typical hook event, a 1 MiB Read of source code) and 1 MiB of each of
// the adversarial inputs, and reports each one's throughput (MB/s:name)
// and the slowest adversarial one's beside the plain 1 MiB's (x-plain; a
// small constant, where quadratic work would give a fraction of a
// percent).
func BenchmarkRedactAdversarial(b *testing.B) {
	r, err := newRedactor(redactOptions{})
	if err != nil {
		b.Fatal(err)
	}
	type input struct {
		name    string
		payload []byte
	}
	inputs := []input{{"plain-typical", benchPayload}, {"plain-1MiB", bigPayload()}}
	for _, a := range adversarial {
		inputs = append(inputs, input{a.name, a.make(1 << 20)})
	}
	took := make([]time.Duration, len(inputs))
	for b.Loop() {
		for i, in := range inputs {
			t0 := time.Now()
			r.payload(in.payload, func(string) {})
			took[i] += time.Since(t0)
		}
	}
	mbps := func(i int) float64 {
		return float64(len(inputs[i].payload)) * float64(b.N) / 1e6 / took[i].Seconds()
	}
	slowest := math.Inf(1)
	for i, in := range inputs {
		b.ReportMetric(mbps(i), "MB/s:"+in.name)
		if i >= 2 {
			slowest = min(slowest, mbps(i))
		}
	}
	b.ReportMetric(slowest/mbps(1), "x-plain")
}
