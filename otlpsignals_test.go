package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// signalRecorder is an OTLP/JSON receiver on loopback that counts the log
// records it acknowledged per event id and the spans it took, and refuses
// /v1/traces with 503 while tracesDown is set.
type signalRecorder struct {
	mu         sync.Mutex
	logs       map[string]int // event id → records acknowledged
	spans      int
	tracesDown bool
	refused    int // /v1/traces requests refused
}

func startSignalRecorder(t *testing.T) (*signalRecorder, string) {
	t.Helper()
	rec := &signalRecorder{logs: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readRequest(r)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if r.URL.Path == otlpTracesPath && rec.tracesDown {
			rec.refused++
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []json.RawMessage `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
			ResourceLogs []struct {
				ScopeLogs []struct {
					LogRecords []struct {
						Attributes []struct {
							Key   string `json:"key"`
							Value struct {
								StringValue string `json:"stringValue"`
							} `json:"value"`
						} `json:"attributes"`
					} `json:"logRecords"`
				} `json:"scopeLogs"`
			} `json:"resourceLogs"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				rec.spans += len(ss.Spans)
			}
		}
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					for _, a := range lr.Attributes {
						if a.Key == "difflore.event.id" {
							rec.logs[a.Value.StringValue]++
						}
					}
				}
			}
		}
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func (r *signalRecorder) setTracesDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tracesDown = down
}

// TestOTLPRetrySendsOnlyWhatWasRefused: a batch whose log records
// /v1/logs acknowledged and whose spans /v1/traces refused (503) is sent
// again for its spans alone: each event reaches the backend as one log
// record, whether the retry comes from the same daemon or from the next
// one (the acknowledgement is kept in the outbox with the batch's
// settlement), and every span is delivered once the traces come back.
func TestOTLPRetrySendsOnlyWhatWasRefused(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same daemon"
		if restart {
			name = "next daemon"
		}
		t.Run(name, func(t *testing.T) {
			rec, endpoint := startSignalRecorder(t)
			h := mustOpenHomeCreate(t, ownHome(t))
			events := hookEvents(t, codexSession())
			ob := mustOutbox(t, h, time.Now)
			for _, e := range events {
				if err := insertEventTP(ob.conn, e.ID, e.Kind, e.Payload, e.CreatedAt, e.Traceparent); err != nil {
					t.Fatal(err)
				}
			}
			newDrainerFor := func(ob *outbox) *drainer {
				return newDrainer(ob, jsonSpanSink(t, endpoint), 100, slog.New(slog.DiscardHandler), time.Now)
			}
			d := newDrainerFor(ob)
			rec.setTracesDown(true)
			if sent, err := d.step(context.Background()); err != nil || !sent {
				t.Fatalf("first step: sent %v, %v", sent, err)
			}
			rec.mu.Lock()
			refused, logged := rec.refused, len(rec.logs)
			rec.mu.Unlock()
			if refused != 1 || logged != len(events) {
				t.Fatalf("first attempt: %d trace requests refused, %d events logged; want 1 and %d", refused, logged, len(events))
			}
			if c := outboxCounts(t, h.dir); c.Pending != int64(len(events)) {
				t.Fatalf("after the refusal %d events pending, want %d", c.Pending, len(events))
			}
			if restart {
				ob.Close()
				ob = mustOutbox(t, h, time.Now)
				d = newDrainerFor(ob)
			}
			defer ob.Close()
			rec.setTracesDown(false)
			setAvailableAt(t, ob.conn, time.Now())
			for range 5 {
				sent, err := d.step(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !sent {
					break
				}
			}
			if c := outboxCounts(t, h.dir); c.Pending != 0 || c.Inflight != 0 {
				t.Fatalf("after the traces came back: %+v, want nothing left", c)
			}
			var kept int
			err := sqlitex.ExecuteTransient(ob.conn, `SELECT count(*) FROM spans WHERE state = 3`, &sqlitex.ExecOptions{
				ResultFunc: func(stmt *sqlite.Stmt) error { kept = stmt.ColumnInt(0); return nil },
			})
			if err != nil || kept != 0 {
				t.Errorf("%d acknowledged log records still recorded after delivery (%v), want 0", kept, err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, e := range events {
				if n := rec.logs[e.ID]; n != 1 {
					t.Errorf("event %s: %d log records acknowledged, want 1", e.ID, n)
				}
			}
			if rec.spans != 2 {
				t.Errorf("%d spans delivered, want the turn and the tool", rec.spans)
			}
		})
	}
}
