package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// otlpRecorder is an OTLP/JSON receiver on loopback that keeps the spans
// and log records it is sent.
type otlpRecorder struct {
	mu    sync.Mutex
	spans []map[string]any
	logs  []map[string]any
	paths []string
}

func startOTLPRecorder(t *testing.T) (*otlpRecorder, string) {
	t.Helper()
	rec := &otlpRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readRequest(r)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []map[string]any `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
			ResourceLogs []struct {
				ScopeLogs []struct {
					LogRecords []map[string]any `json:"logRecords"`
				} `json:"scopeLogs"`
			} `json:"resourceLogs"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.paths = append(rec.paths, r.URL.Path)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				rec.spans = append(rec.spans, ss.Spans...)
			}
		}
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				rec.logs = append(rec.logs, sl.LogRecords...)
			}
		}
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func (r *otlpRecorder) spanNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, s := range r.spans {
		names = append(names, s["name"].(string))
	}
	return names
}

// jsonSpanSink is an OTLP/JSON sink named "default", with spans, that
// delivers to endpoint (an http:// URL).
func jsonSpanSink(t *testing.T, endpoint string) *otlpSink {
	t.Helper()
	u, err := url.Parse("otlp+" + endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return newOTLPSink(u, "otlp+"+endpoint, "", "test", otlpOptions{name: "default", protocol: protocolJSON})
}

// drainOnce delivers what is pending in ob through a new OTLP/JSON sink
// named "default", as a freshly started daemon would.
func drainOnce(t *testing.T, ob *outbox, endpoint string) {
	t.Helper()
	d := newDrainer(ob, jsonSpanSink(t, endpoint), 100, slog.New(slog.DiscardHandler), time.Now)
	for range 10 {
		sent, err := d.step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !sent {
			return
		}
	}
	t.Fatal("the outbox did not drain in 10 steps")
}

// TestSpansSurviveRestart: a turn and a tool call whose starts are
// delivered by one daemon and whose ends by the next still make whole
// spans, starting when their starts were hooked.
func TestSpansSurviveRestart(t *testing.T) {
	rec, endpoint := startOTLPRecorder(t)
	h := mustOpenHomeCreate(t, testHome(t))
	events := hookEvents(t, codexSession())
	insert := func(ob *outbox, evs []event) {
		for _, e := range evs {
			if err := insertEventTP(ob.conn, e.ID, e.Kind, e.Payload, e.CreatedAt, e.Traceparent); err != nil {
				t.Fatal(err)
			}
		}
	}
	ob := mustOutbox(t, h, time.Now)
	insert(ob, events[:3]) // the session, the prompt, the tool's start
	drainOnce(t, ob, endpoint)
	ob.Close()
	if n := len(rec.spanNames()); n != 0 {
		t.Fatalf("%d spans sent before any end", n)
	}

	ob = mustOutbox(t, h, time.Now)
	defer ob.Close()
	var open int
	err := sqlitex.ExecuteTransient(ob.conn, `SELECT count(*) FROM spans WHERE sink = 'default' AND state = 0`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { open = stmt.ColumnInt(0); return nil },
	})
	if err != nil || open != 2 {
		t.Fatalf("%d open spans kept (%v), want the turn and the tool", open, err)
	}
	insert(ob, events[3:])
	drainOnce(t, ob, endpoint)
	_, want := buildAll(events, len(events), false)
	if got := rec.spanNames(); !slices.Equal(got, []string{"execute_tool Bash", "invoke_agent codex"}) {
		t.Fatalf("spans %v", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, s := range rec.spans {
		if s["spanId"] != want[i].SpanID || s["traceId"] != want[i].TraceID || s["startTimeUnixNano"] != jsonNano(want[i].Start) {
			t.Errorf("span %d = %v, want ids and start of %+v", i, s, want[i])
		}
	}
	// Each log record names its span; the session's start and end belong
	// to none (no turn is open then).
	for _, l := range rec.logs {
		var id string
		for _, a := range l["attributes"].([]any) {
			if kv := a.(map[string]any); kv["key"] == "difflore.event.id" {
				id = kv["value"].(map[string]any)["stringValue"].(string)
			}
		}
		if (l["spanId"] == nil) != (id == "ev-01" || id == "ev-06") {
			t.Errorf("record %s: spanId %v", id, l["spanId"])
		}
	}
}

// jsonNano is a time as OTLP/JSON writes it: a decimal string.
func jsonNano(n int64) string { return strconv.FormatInt(n, 10) }

// TestMigrateV4Outbox: an outbox of schema version 4 (several sinks, no
// TRACEPARENT) upgrades to version 5 in place when it is opened: its
// events are kept, with no TRACEPARENT, for the first sink and for a
// second one whose progress (a claimed event, hwm past another) is kept
// too, and spans can be kept in it for each sink apart.
func TestMigrateV4Outbox(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	ob := mustOutbox(t, h, time.Now)
	err := sqlitex.ExecuteScript(ob.conn, `DROP TABLE spans; ALTER TABLE events DROP COLUMN traceparent; PRAGMA user_version = 4;`, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"v4-a", "v4-b", "v4-c"} {
		if err := sqlitex.Execute(ob.conn, `INSERT INTO events (id, kind, payload, created_at, available_at) VALUES (?, 'k', CAST('{}' AS BLOB), 1, 1)`,
			&sqlitex.ExecOptions{Args: []any{id}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	// The second sink took v4-a and v4-b and delivered v4-b: v4-a is in
	// flight for it, v4-c fresh.
	q := &sinkQueue{ob: ob, name: "second"}
	tok, evs, err := q.claim(2, maxBatchBytes, time.Minute)
	if err != nil || len(evs) != 2 {
		t.Fatalf("second sink's claim: %d events, %v", len(evs), err)
	}
	if err := q.ack(tok, evs[1:]); err != nil {
		t.Fatal(err)
	}
	ob.Close()

	ob = mustOutbox(t, h, time.Now)
	defer ob.Close()
	if v, err := userVersion(ob.conn); err != nil || v != 5 {
		t.Fatalf("schema version %d (%v), want %d", v, err, schemaVersion)
	}
	if err := insertEventTP(ob.conn, "v5", "k", []byte(`{}`), time.UnixMilli(2), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"); err != nil {
		t.Fatal(err)
	}
	_, evs, err = ob.claim(10, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(evs); !slices.Equal(got, []string{"v4-a", "v4-b", "v4-c", "v5"}) {
		t.Fatalf("first sink claimed %v", got)
	}
	if evs[0].Traceparent != "" || evs[3].Traceparent != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("traceparents %q, %q", evs[0].Traceparent, evs[3].Traceparent)
	}
	// The second sink's lease on v4-a is as it was: given back (as after
	// any daemon's death), it comes again with v4-c and v5, not v4-b.
	q = &sinkQueue{ob: ob, name: "second"}
	if err := q.resetInflight(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		_, evs, err = q.claim(10, maxBatchBytes, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, eventIDs(evs)...)
	}
	if !slices.Equal(got, []string{"v4-a", "v4-c", "v5"}) {
		t.Fatalf("second sink claimed %v after the upgrade, want v4-a, v4-c, v5", got)
	}
	keepSpanEach(t, ob, "default", "second")
}

// keepSpanEach keeps a span for each sink named and reads it back.
func keepSpanEach(t *testing.T, ob *outbox, sinks ...string) {
	t.Helper()
	for _, name := range sinks {
		st := &spanStore{ob: ob, sink: name}
		if err := st.save([]*spanEntry{{Span: traceSpan{SpanID: "0102030405060708", TraceID: strings.Repeat("ab", 16)}}}, nil); err != nil {
			t.Fatalf("keep a span of %s: %v", name, err)
		}
		if state, err := st.load(); err != nil || len(state.entries) != 1 {
			t.Errorf("load %s: %v, %d entries", name, err, len(state.entries))
		}
	}
}

// TestRemovedSinkTakesItsSpans: a sink removed from config.toml takes its
// spans with it; the first sink's stay.
func TestRemovedSinkTakesItsSpans(t *testing.T) {
	ob := mustOutbox(t, mustOpenHomeCreate(t, testHome(t)), time.Now)
	defer ob.Close()
	if _, err := ob.syncSinks([]string{"second"}); err != nil {
		t.Fatal(err)
	}
	keepSpanEach(t, ob, "default", "second")
	if _, err := ob.syncSinks(nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"default": 1, "second": 0} {
		if state, err := (&spanStore{ob: ob, sink: name}).load(); err != nil || len(state.entries) != want {
			t.Errorf("after second was removed, load %s: %v, %d entries; want %d", name, err, len(state.entries), want)
		}
	}
}

// TestEnqueueKeepsTraceparent: a hook run with TRACEPARENT in its
// environment keeps it beside its event; one without keeps none.
func TestEnqueueKeepsTraceparent(t *testing.T) {
	home := testHome(t)
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	t.Setenv("TRACEPARENT", tp)
	mustCLI(t, "enqueue", "--id", "with", "--kind", "claude.UserPromptSubmit", `{"session_id":"s"}`)
	t.Setenv("TRACEPARENT", "")
	mustCLI(t, "enqueue", "--id", "without", "--kind", "claude.Stop", `{"session_id":"s"}`)
	ob := mustOutbox(t, mustOpenHomeCreate(t, home), time.Now)
	defer ob.Close()
	_, evs, err := ob.claim(10, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Traceparent != tp || evs[1].Traceparent != "" {
		t.Errorf("claimed %+v, want the first with %s and the second with none", evs, tp)
	}
}

// TestSalvageKeepsTraceparent: events salvaged from a corrupt outbox, read
// page by page, keep their TRACEPARENT, and the half that are one sink's
// gap events their sink too (rows of 13 columns).
func TestSalvageKeepsTraceparent(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ob := mustOutbox(t, h, time.Now)
	err := ob.immediate(func() error {
		for i := range 200 {
			p := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 100))
			if err := insertEventTP(ob.conn, fmt.Sprintf("tp-%04d", i), "event", []byte(p), time.Now(), tp); err != nil {
				return err
			}
		}
		return sqlitex.ExecuteTransient(ob.conn, `UPDATE events SET sink = 'second' WHERE seq % 2 = 0`, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	fresh, logs := salvageCorrupted(t, h, ob)
	defer fresh.Close()
	_, evs, err := fresh.claim(1000, maxBatchBytes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if strings.HasPrefix(e.ID, "tp-") {
			n++
			if e.Traceparent != tp {
				t.Fatalf("salvaged %s with traceparent %q, want %q", e.ID, e.Traceparent, tp)
			}
		}
	}
	if n != 200 {
		t.Errorf("salvaged %d of 200 events\n%s", n, logs.String())
	}
	var both int
	err = sqlitex.ExecuteTransient(fresh.conn, `SELECT count(*) FROM events WHERE sink = 'second' AND traceparent = '`+tp+`'`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { both = stmt.ColumnInt(0); return nil },
	})
	if err != nil || both != 100 {
		t.Errorf("salvaged %d events with both their sink and their traceparent (%v), want 100", both, err)
	}
}

// spanRowStates counts the rows kept for the default sink by state.
func spanRowStates(t *testing.T, ob *outbox) map[int64]int {
	t.Helper()
	n := map[int64]int{}
	err := sqlitex.ExecuteTransient(ob.conn, `SELECT state, count(*) FROM spans WHERE sink = 'default' GROUP BY state`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error { n[stmt.ColumnInt64(0)] = stmt.ColumnInt(1); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClosedSpansShareARow: the spans a delivered batch closed are kept
// together in one row, not one row each, and the next daemon knows them
// from it as the first one did: the same events queued again send no span
// again, and their log records name the spans that a builder that never
// stopped names for them.
func TestClosedSpansShareARow(t *testing.T) {
	rec, endpoint := startOTLPRecorder(t)
	h := mustOpenHomeCreate(t, testHome(t))
	events := hookEvents(t, claudeSession())
	insert := func(ob *outbox) {
		for _, e := range events {
			if err := insertEventTP(ob.conn, e.ID, e.Kind, e.Payload, e.CreatedAt, e.Traceparent); err != nil {
				t.Fatal(err)
			}
		}
	}
	ob := mustOutbox(t, h, time.Now)
	insert(ob)
	drainOnce(t, ob, endpoint)
	sent := len(rec.spanNames())
	if got := spanRowStates(t, ob); !maps.Equal(got, map[int64]int{entryClosedRows: 1}) {
		t.Fatalf("rows by state %v after one batch that closed %d spans, want one row of closed spans", got, sent)
	}
	ob.Close()

	ob = mustOutbox(t, h, time.Now)
	defer ob.Close()
	insert(ob)
	drainOnce(t, ob, endpoint)
	if n := len(rec.spanNames()); n != sent {
		t.Errorf("the same events sent again made %d spans more", n-sent)
	}
	b, _ := buildAll(events, len(events), false)
	want := b.build(events, spanEpoch).links
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.logs) != 2*len(events) {
		t.Fatalf("%d log records, want %d", len(rec.logs), 2*len(events))
	}
	for i, l := range rec.logs[len(events):] {
		w, ok := want[events[i].ID]
		if !ok && (l["spanId"] != nil || l["traceId"] != nil) || ok && (l["spanId"] != w.span || l["traceId"] != w.trace) {
			t.Errorf("record of %s names span %v/%v, want %+v", events[i].ID, l["traceId"], l["spanId"], w)
		}
	}
}

// TestClosedSpanRowsPruned: a row of closed spans goes once a sweep has
// forgotten them all (spanBound on the events' clock), in the transaction
// of the batch whose sweep it was; a span opened again after it closed is
// read back open from its own row.
func TestClosedSpanRowsPruned(t *testing.T) {
	_, endpoint := startOTLPRecorder(t)
	h := mustOpenHomeCreate(t, testHome(t))
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	old := hookEvents(t, codexSession())
	for i := range old {
		old[i].CreatedAt = old[i].CreatedAt.Add(-3 * spanBound)
	}
	for _, e := range old {
		if err := insertEventTP(ob.conn, e.ID, e.Kind, e.Payload, e.CreatedAt, e.Traceparent); err != nil {
			t.Fatal(err)
		}
	}
	drainOnce(t, ob, endpoint)
	if got := spanRowStates(t, ob); got[entryClosedRows] != 1 {
		t.Fatalf("rows by state %v, want one row of closed spans", got)
	}
	// Three days later the same turn's prompt comes again (its turn id
	// with it), alone: its span is open again, and the sweep of its
	// batch forgets the spans closed three days before.
	later := old[1]
	later.ID, later.CreatedAt = "ev-later", later.CreatedAt.Add(3*spanBound)
	if err := insertEventTP(ob.conn, later.ID, later.Kind, later.Payload, later.CreatedAt, later.Traceparent); err != nil {
		t.Fatal(err)
	}
	drainOnce(t, ob, endpoint)
	if got := spanRowStates(t, ob); !maps.Equal(got, map[int64]int{entryOpen: 1}) {
		t.Errorf("rows by state %v, want the open turn's row alone", got)
	}
	st, err := (&spanStore{ob: ob, sink: "default"}).load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.entries) != 1 || len(st.turn) != 1 {
		t.Errorf("read back %d entries, %d open turns; want the open turn", len(st.entries), len(st.turn))
	}
}

// TestSpansRestartEveryEvent: a Claude session (parallel tool calls, a
// failure, a subagent, a turn cut off, the session's end) delivered one
// event per daemon makes the spans that one builder makes of it, whatever
// each daemon read back from the rows of open and of closed spans.
func TestSpansRestartEveryEvent(t *testing.T) {
	rec, endpoint := startOTLPRecorder(t)
	h := mustOpenHomeCreate(t, testHome(t))
	events := hookEvents(t, claudeSession())
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	for _, e := range events {
		if err := insertEventTP(ob.conn, e.ID, e.Kind, e.Payload, e.CreatedAt, e.Traceparent); err != nil {
			t.Fatal(err)
		}
		drainOnce(t, ob, endpoint)
	}
	_, want := buildAll(events, 1, false)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.spans) != len(want) {
		t.Fatalf("%d spans sent, want %d", len(rec.spans), len(want))
	}
	for i, s := range rec.spans {
		w := want[i]
		if s["spanId"] != w.SpanID || s["traceId"] != w.TraceID || s["name"] != w.Name ||
			s["startTimeUnixNano"] != jsonNano(w.Start) || s["endTimeUnixNano"] != jsonNano(w.End) || len(s["attributes"].([]any)) != len(w.Attrs) {
			t.Errorf("span %d = %v, want %+v", i, s, w)
		}
	}
}
