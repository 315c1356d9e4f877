package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	u, err := url.Parse("otlp+" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := newOTLPSink(u, "otlp+"+srv.URL, "", "test", otlpOptions{name: "default", protocol: protocolJSON})
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
	if want := []string{otlpLogsPath, otlpLogsPath, otlpTracesPath}; fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("requests %v, want %v", paths, want)
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
	u, err := url.Parse("otlp+" + endpoint)
	if err != nil {
		t.Fatal(err)
	}
	sink := func() *otlpSink {
		return newOTLPSink(u, "otlp+"+endpoint, "", "test", otlpOptions{name: "default", protocol: protocolJSON})
	}
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
