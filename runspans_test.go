package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// spanGate is a drainer's queue for an OTLP sink with spans: the first
// batch's ack waits until the endpoint has the second batch's log
// records, and the second batch's ack (in the transaction that settles
// it, before its spans are written) counts the open spans the outbox
// keeps then: what the first batch's settlement wrote.
type spanGate struct {
	queue
	t         *testing.T
	second    chan struct{} // closed when the second batch's log records arrive
	acks      atomic.Int32
	openAfter int // open spans kept when the second batch was settled
}

func (g *spanGate) ack(token string, events []event) error {
	switch g.acks.Add(1) {
	case 1:
		select {
		case <-g.second:
		case <-time.After(10 * time.Second):
			g.t.Error("the first batch was settled before the second was sent")
		}
	case 2:
		g.openAfter = countSpans(g.t, g.store(), entryOpen)
	}
	return g.queue.ack(token, events)
}

// countSpans counts the rows of the default sink's spans in state.
func countSpans(t *testing.T, ob *outbox, state int) int {
	t.Helper()
	var n int
	err := sqlitex.ExecuteTransient(ob.conn, `SELECT count(*) FROM spans WHERE sink = 'default' AND state = :state`, &sqlitex.ExecOptions{
		Named:      map[string]any{":state": state},
		ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt(0); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// queueTurn queues a Claude turn in a new outbox: a prompt and a tool
// call's start, then the call's end and the turn's.
func queueTurn(t *testing.T) *outbox {
	t.Helper()
	h := mustOpenHomeCreate(t, ownHome(t))
	ob := mustOutbox(t, h, time.Now)
	t.Cleanup(func() { ob.Close() })
	payload := func(hook, extra string) []byte {
		return fmt.Appendf(nil, `{"session_id":"s-1","prompt_id":"p-1","hook_event_name":%q%s}`, hook, extra)
	}
	tool := `,"tool_name":"Bash","tool_input":{"command":"go test"},"tool_use_id":"toolu_1"`
	queued := []struct{ kind, hook, extra string }{
		{"claude.UserPromptSubmit", "UserPromptSubmit", `,"prompt":"run the tests"`},
		{"claude.PreToolUse", "PreToolUse", tool},
		{"claude.PostToolUse", "PostToolUse", tool + `,"tool_response":{"stdout":"ok"}`},
		{"claude.Stop", "Stop", `,"stop_hook_active":false`},
	}
	// A millisecond apart, all in the past: an event queued later than
	// the claim's clock is not ready for it.
	now := time.Now()
	for i, e := range queued {
		if err := ob.insert(fmt.Sprintf("ev-%d", i), e.kind, payload(e.hook, e.extra), now.Add(time.Duration(i-len(queued))*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	return ob
}

// runAll runs d until it sends nothing.
func runAll(t *testing.T, d *drainer) {
	t.Helper()
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("still sending after 10 runs")
		}
		sent, err := d.run(context.Background(), context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !sent {
			return
		}
	}
}

// TestRunSpanSinkSendsNextBeforeSettling: an OTLP sink with spans gets
// the next batch sent before the one answered is settled, as a sink
// without does (TestRunSendsNextBeforeSettling), and the settlement of
// the first batch writes the spans as that batch left them, not as the
// second (already sent, delivered and closing them) changed them: the
// turn and the tool call the first batch opened are kept open until the
// second batch's settlement. Every span is sent once, and nothing stays
// open or claimed.
func TestRunSpanSinkSendsNextBeforeSettling(t *testing.T) {
	t.Parallel()
	var gate *spanGate
	var mu sync.Mutex
	var paths []string
	var logsRequests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readRequest(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		if r.URL.Path == otlpLogsPath {
			if logsRequests++; logsRequests == 2 {
				close(gate.second)
			}
		}
		mu.Unlock()
		fmt.Fprint(w, "{}")
	}))
	t.Cleanup(srv.Close)

	ob := queueTurn(t)
	s := jsonSpanSink(t, srv.URL)
	gate = &spanGate{queue: ob, t: t, second: make(chan struct{})}
	d := newDrainer(gate, s, 2, slog.New(slog.DiscardHandler), time.Now)
	runAll(t, d)

	if gate.openAfter != 2 {
		t.Errorf("%d open spans kept when the second batch was settled, want the first batch's turn and tool call", gate.openAfter)
	}
	if n := countSpans(t, ob, entryOpen); n != 0 {
		t.Errorf("%d open spans kept after both batches, want none", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// The second batch's log records and spans may arrive in either order.
	slices.Sort(paths)
	if want := []string{otlpLogsPath, otlpLogsPath, otlpTracesPath}; !slices.Equal(paths, want) {
		t.Errorf("requests %v, want logs for both batches and the spans the second closed", paths)
	}
	if c, err := ob.counts(); err != nil || c.Pending != 0 || c.Inflight != 0 {
		t.Errorf("after run: %+v (%v), want nothing pending or in flight", c, err)
	}
}

// TestRunReloadedSpanSinkReadsTheAnsweredBatch: a reload between two
// batches that makes a new OTLP sink (beforeSend) has the answered batch
// settled before the new sink reads the spans kept in the outbox: the
// second batch closes the spans the first opened, with no lone end kept
// and none left open, and the turn and the tool call are sent.
func TestRunReloadedSpanSinkReadsTheAnsweredBatch(t *testing.T) {
	t.Parallel()
	rec, endpoint := startOTLPRecorder(t)
	ob := queueTurn(t)
	sink := func() *otlpSink { return jsonSpanSink(t, endpoint) }
	d := newDrainer(ob, sink(), 2, slog.New(slog.DiscardHandler), time.Now)
	var sends int
	d.beforeSend = func() {
		if sends++; sends == 2 {
			d.sink = sink()
		}
	}
	runAll(t, d)
	if n := countSpans(t, ob, entryEndOnly); n != 0 {
		t.Errorf("%d lone ends kept, want none: the new sink did not read the first batch's starts", n)
	}
	if n := countSpans(t, ob, entryOpen); n != 0 {
		t.Errorf("%d open spans kept, want none", n)
	}
	if got := rec.spanNames(); len(got) != 2 {
		t.Errorf("spans %v, want the tool call and the turn", got)
	}
}

// spansEndpoint is an OTLP/JSON endpoint on loopback whose answer to
// each request is script's, by path and the number of requests to that
// path before it; it counts the requests to each path.
func spansEndpoint(t *testing.T, script func(path string, n int) int) (string, func(path string) int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readRequest(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		n := seen[r.URL.Path]
		seen[r.URL.Path]++
		mu.Unlock()
		if status := script(r.URL.Path, n); status != http.StatusOK {
			http.Error(w, "not now", status)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	t.Cleanup(srv.Close)
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[path]
	}
	return srv.URL, count
}

// spanDrainer is a drainer of ob to an OTLP/JSON sink with spans at
// endpoint, in batches of two, that retries at once.
func spanDrainer(t *testing.T, ob *outbox, endpoint string) *drainer {
	t.Helper()
	d := newDrainer(ob, jsonSpanSink(t, endpoint), 2, slog.New(slog.DiscardHandler), time.Now)
	d.jitter = func(time.Duration) time.Duration { return 0 }
	return d
}

// TestSpansGoBesideLogRecords: once the endpoint took a batch, the next
// batch's spans go while its log records are on the wire (the second
// log records' answer waits for the spans' request; a sink that sends
// the spans after that answer leaves it waiting until the test gives
// up), and the batch is delivered whole.
func TestSpansGoBesideLogRecords(t *testing.T) {
	t.Parallel()
	spansArrived := make(chan struct{})
	endpoint, count := spansEndpoint(t, func(path string, n int) int {
		switch {
		case path == otlpTracesPath && n == 0:
			close(spansArrived)
		case path == otlpLogsPath && n == 1:
			select {
			case <-spansArrived:
			case <-time.After(10 * time.Second):
				t.Error("the spans were not sent while the log records were on the wire")
			}
		}
		return http.StatusOK
	})
	ob := queueTurn(t)
	runAll(t, spanDrainer(t, ob, endpoint))
	if logs, spans := count(otlpLogsPath), count(otlpTracesPath); logs != 2 || spans != 1 {
		t.Errorf("%d log requests and %d span requests, want 2 and 1", logs, spans)
	}
	if c, err := ob.counts(); err != nil || c.Pending != 0 || c.Inflight != 0 {
		t.Errorf("after run: %+v (%v), want nothing pending or in flight", c, err)
	}
}

// TestSpansWaitForLogRecordsAfterARefusal: spans sent beside log records
// that the endpoint refuses go again with their batch, but once only:
// after a batch that was not delivered, the spans wait for the log
// records' answer again, so the refusals after the first cost no spans.
func TestSpansWaitForLogRecordsAfterARefusal(t *testing.T) {
	t.Parallel()
	endpoint, count := spansEndpoint(t, func(path string, n int) int {
		if path == otlpLogsPath && n >= 1 && n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	ob := queueTurn(t)
	runAll(t, spanDrainer(t, ob, endpoint))
	if logs := count(otlpLogsPath); logs != 5 {
		t.Errorf("%d log requests, want 5: the first batch, three refusals and the second batch", logs)
	}
	if spans := count(otlpTracesPath); spans != 2 {
		t.Errorf("%d span requests, want 2: beside the first refusal, and after the log records were taken", spans)
	}
	if c, err := ob.counts(); err != nil || c.Pending != 0 || c.Inflight != 0 {
		t.Errorf("after run: %+v (%v), want nothing pending or in flight", c, err)
	}
}
