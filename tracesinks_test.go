package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// otlpCapture is an OTLP/HTTP receiver on loopback, in either protocol,
// that keeps every request it takes (path, content type, body) and
// answers 503 while down.
type otlpCapture struct {
	down atomic.Bool
	mu   sync.Mutex
	reqs []capturedOTLP
}

type capturedOTLP struct {
	path, contentType string
	body              []byte
}

func startOTLPCapture(t *testing.T) (*otlpCapture, string) {
	t.Helper()
	c := &otlpCapture{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, err := readRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, capturedOTLP{r.URL.Path, r.Header.Get("Content-Type"), body})
		c.mu.Unlock()
		// An empty body is a full success in both protocols.
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	}))
	t.Cleanup(srv.Close)
	return c, "otlp+" + srv.URL
}

// requests are the captured requests to path.
func (c *otlpCapture) requests(path string) []capturedOTLP {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []capturedOTLP
	for _, r := range c.reqs {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// jsonSpanIDs are the span and trace ids of the spans in OTLP/JSON
// bodies, as "trace/span", in the order sent.
func jsonSpanIDs(t *testing.T, reqs []capturedOTLP) []string {
	t.Helper()
	var ids []string
	for _, r := range reqs {
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []struct {
						TraceID string `json:"traceId"`
						SpanID  string `json:"spanId"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.Unmarshal(r.body, &req); err != nil {
			t.Fatalf("an OTLP/JSON traces body: %v\n%s", err, r.body)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					ids = append(ids, s.TraceID+"/"+s.SpanID)
				}
			}
		}
	}
	return ids
}

// wantSpanIDs are the ids of the spans a whole session makes, as
// jsonSpanIDs gives them.
func wantSpanIDs(events []event) []string {
	_, want := buildAll(events, len(events), false)
	ids := make([]string, len(want))
	for i, s := range want {
		ids[i] = s.TraceID + "/" + s.SpanID
	}
	return ids
}

// pbHasIDs reports whether protobuf bodies hold each span's trace and span
// id as the bytes OTLP's Span message carries them.
func pbHasIDs(reqs []capturedOTLP, ids []string) bool {
	for _, id := range ids {
		trace, span, _ := strings.Cut(id, "/")
		tb, _ := hex.DecodeString(trace)
		sb, _ := hex.DecodeString(span)
		if !slices.ContainsFunc(reqs, func(r capturedOTLP) bool {
			return bytes.Contains(r.body, tb) && bytes.Contains(r.body, sb)
		}) {
			return false
		}
	}
	return true
}

// queueSession writes a whole Codex session's hook events into the outbox
// of the home dir, as its hooks would have.
func queueSession(t *testing.T, dir string) []event {
	t.Helper()
	events := hookEvents(t, codexSession())
	ob := mustOutbox(t, mustOpenHomeCreate(t, dir), time.Now)
	defer ob.Close()
	for _, e := range events {
		if err := insertEventTP(ob.conn, e.ID, e.Kind, e.Payload, e.CreatedAt, e.Traceparent); err != nil {
			t.Fatal(err)
		}
	}
	return events
}

// spanRows counts the rows of the spans table kept for sink.
func spanRows(t *testing.T, dir, sink string) int {
	t.Helper()
	ob := mustOutbox(t, mustOpenHome(t, dir), time.Now)
	defer ob.Close()
	n := -1
	err := sqlitex.Execute(ob.conn, `SELECT count(*) FROM spans WHERE sink = ?`, &sqlitex.ExecOptions{
		Args:       []any{sink},
		ResultFunc: func(stmt *sqlite.Stmt) error { n = stmt.ColumnInt(0); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTracesTwoSinks runs a daemon with two OTLP sinks: the top-level one
// in protobuf with traces alone, a [[sink]] table in JSON with logs and
// traces. Each builds the session's spans on its own and receives them
// with the same ids; only the second receives log records.
func TestTracesTwoSinks(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	pb, pbURL := startOTLPCapture(t)
	js, jsURL := startOTLPCapture(t)
	events := queueSession(t, dir)
	writeConfig(t, dir, fmt.Sprintf("endpoint = %q\nsignals = [\"traces\"]\n\n[[sink]]\nname = \"json\"\nendpoint = %q\nprotocol = \"http/json\"\nsignals = [\"logs\", \"traces\"]\n",
		pbURL, jsURL))
	want := wantSpanIDs(events)
	if len(want) < 2 {
		t.Fatalf("the session makes %d spans", len(want))
	}
	e.inProcessDaemon("--tick", "1h")
	waitFor(t, 30*time.Second, "both sinks to receive the spans", func() bool {
		return len(jsonSpanIDs(t, js.requests(otlpTracesPath))) >= len(want) && pbHasIDs(pb.requests(otlpTracesPath), want)
	})
	if got := jsonSpanIDs(t, js.requests(otlpTracesPath)); !slices.Equal(got, want) {
		t.Errorf("the JSON sink's spans %v, want %v", got, want)
	}
	for _, r := range pb.requests(otlpTracesPath) {
		if r.contentType != "application/x-protobuf" {
			t.Errorf("the protobuf sink was sent %q", r.contentType)
		}
	}
	for _, r := range js.requests(otlpTracesPath) {
		if r.contentType != "application/json" {
			t.Errorf("the JSON sink was sent %q", r.contentType)
		}
	}
	if n := len(pb.requests(otlpLogsPath)); n != 0 {
		t.Errorf("the traces-only sink was sent %d log requests", n)
	}
	if n := len(js.requests(otlpLogsPath)); n == 0 {
		t.Error("the logs and traces sink was sent no logs")
	}
	// Each keeps its spans under its own name, written when its batch is
	// settled, after the answer the requests above already show.
	waitFor(t, 30*time.Second, "spans rows kept under each sink's own name (default and json)", func() bool {
		return spanRows(t, dir, defaultSinkName) > 0 && spanRows(t, dir, "json") > 0
	})
}

// TestTracesSinkDownThenUp runs a daemon with two OTLP/JSON sinks, the
// [[sink]] one down: the other receives the spans meanwhile, and nothing
// of the down sink's spans is kept (none was delivered); once it is up it
// receives the same spans, built from its own state.
func TestTracesSinkDownThenUp(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	live, liveURL := startOTLPCapture(t)
	backup, backupURL := startOTLPCapture(t)
	backup.down.Store(true)
	events := queueSession(t, dir)
	writeConfig(t, dir, fmt.Sprintf("endpoint = %q\nprotocol = \"http/json\"\n\n[[sink]]\nname = \"backup\"\nendpoint = %q\n",
		liveURL, backupURL))
	want := wantSpanIDs(events)
	e.inProcessDaemon("--tick", "1h")
	waitFor(t, 30*time.Second, "the live sink to receive the spans", func() bool {
		return len(jsonSpanIDs(t, live.requests(otlpTracesPath))) >= len(want)
	})
	if got := jsonSpanIDs(t, live.requests(otlpTracesPath)); !slices.Equal(got, want) {
		t.Errorf("the live sink's spans %v, want %v", got, want)
	}
	if n := spanRows(t, dir, "backup"); n != 0 {
		t.Errorf("%d spans rows kept for the down sink, which was delivered nothing", n)
	}
	// The spans' rows are written when the batch is settled, after the
	// answer that the request above already shows.
	waitFor(t, 30*time.Second, "spans rows kept for the live sink", func() bool {
		return spanRows(t, dir, defaultSinkName) > 0
	})
	backup.down.Store(false)
	waitFor(t, 60*time.Second, "the sink that came back to receive the spans", func() bool {
		return len(jsonSpanIDs(t, backup.requests(otlpTracesPath))) >= len(want)
	})
	if got := jsonSpanIDs(t, backup.requests(otlpTracesPath)); !slices.Equal(got, want) {
		t.Errorf("the sink that came back was sent spans %v, want %v", got, want)
	}
	if got := jsonSpanIDs(t, live.requests(otlpTracesPath)); !slices.Equal(got, want) {
		t.Errorf("the live sink was sent spans %v after the other came back, want %v once", got, want)
	}
	waitFor(t, 30*time.Second, "spans rows kept for the sink that came back", func() bool {
		return spanRows(t, dir, "backup") > 0
	})
}

// TestSinkOTLPOptions: each sink's protocol, signals and trace_content are
// its [[sink]] table's, else the top level's, else the defaults; each key
// on its own, and named for its sink. No key is an unknown-key warning.
func TestSinkOTLPOptions(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	mustOpenHomeCreate(t, env.home)
	conf := `endpoint = "otlp+http://127.0.0.1:1"
protocol = "http/json"
trace_content = true

[[sink]]
name = "a"
endpoint = "otlp+http://127.0.0.1:2"
signals = ["traces"]

[[sink]]
name = "b"
endpoint = "otlp+http://127.0.0.1:3"
protocol = "http/protobuf"
trace_content = false
`
	if err := os.WriteFile(filepath.Join(env.home, configFileName), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := loadConfig(env.getenv, nil, nil, nil).settings()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.warnings) != 0 {
		t.Errorf("warnings: %q", st.warnings)
	}
	want := []otlpOptions{
		{name: "default", protocol: protocolJSON, traceContent: true},
		{name: "a", protocol: protocolJSON, traceContent: true, noLogs: true},
		{name: "b", protocol: protocolProtobuf},
	}
	specs := st.sinkSpecs()
	if len(specs) != len(want) {
		t.Fatalf("%d sinks, want %d", len(specs), len(want))
	}
	for i, s := range specs {
		if s.otlp != want[i] {
			t.Errorf("sink %s: %+v, want %+v", s.name, s.otlp, want[i])
		}
		sk, err := newSink(s, "v", false)
		if err != nil {
			t.Fatal(err)
		}
		o := sk.(*otlpSink)
		if o.name != s.name || o.protobuf != (want[i].protocol == protocolProtobuf) || o.logs == want[i].noLogs || o.spans == nil {
			t.Errorf("sink %s made as %+v", s.name, o)
		}
	}
	// A bad value in a table is refused, named by its table.
	bad := strings.Replace(conf, `signals = ["traces"]`, `signals = ["metrics"]`, 1)
	if err := os.WriteFile(filepath.Join(env.home, configFileName), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(env.getenv, nil, nil, nil).settings(); err == nil || !strings.Contains(err.Error(), `[[sink]] "a": signals: "metrics"`) {
		t.Errorf("a bad signal in a table: %v", err)
	}
}
