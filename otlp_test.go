package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOTLPAnyValue checks the payload → AnyValue mapping for every JSON
// type, byte for byte, since the receiver reads exactly these field names.
func TestOTLPAnyValue(t *testing.T) {
	tests := []struct {
		name, payload, want string
	}{
		{"string", `"hi"`, `{"stringValue":"hi"}`},
		{"unicode", `"héllo \u2603 😀 \"q\" \\"`, `{"stringValue":"héllo ☃ 😀 \"q\" \\"}`},
		{"control characters", `"a\u0001b\n"`, `{"stringValue":"a\u0001b\n"}`},
		{"integer", `42`, `{"intValue":"42"}`},
		{"negative integer", `-7`, `{"intValue":"-7"}`},
		{"zero", `0`, `{"intValue":"0"}`},
		{"int64 max", `9223372036854775807`, `{"intValue":"9223372036854775807"}`},
		{"int64 min", `-9223372036854775808`, `{"intValue":"-9223372036854775808"}`},
		{"integer beyond float64 precision", `9007199254740993`, `{"intValue":"9007199254740993"}`},
		{"integer beyond int64", `9223372036854775808`, `{"stringValue":"9223372036854775808"}`},
		{"integer below int64", `-99999999999999999999999`, `{"stringValue":"-99999999999999999999999"}`},
		{"float", `1.5`, `{"doubleValue":1.5}`},
		{"float with exponent", `-2.5E-8`, `{"doubleValue":-2.5e-08}`},
		{"integer-valued float", `1.0`, `{"doubleValue":1}`},
		{"exponent integer", `1e3`, `{"doubleValue":1000}`},
		{"shortest round trip", `0.1`, `{"doubleValue":0.1}`},
		{"float beyond float64", `1e999`, `{"stringValue":"1e999"}`},
		{"true", `true`, `{"boolValue":true}`},
		{"false", `false`, `{"boolValue":false}`},
		{"null", `null`, `{}`},
		{"empty object", `{}`, `{"kvlistValue":{"values":[]}}`},
		{"empty array", `[]`, `{"arrayValue":{"values":[]}}`},
		{"object keeps key order", `{"b":1,"a":"x"}`,
			`{"kvlistValue":{"values":[{"key":"b","value":{"intValue":"1"}},{"key":"a","value":{"stringValue":"x"}}]}}`},
		{"object keeps repeated keys", `{"a":1,"a":2}`,
			`{"kvlistValue":{"values":[{"key":"a","value":{"intValue":"1"}},{"key":"a","value":{"intValue":"2"}}]}}`},
		{"array of every type", `[1, 2.5, "s", true, null, {}, []]`,
			`{"arrayValue":{"values":[{"intValue":"1"},{"doubleValue":2.5},{"stringValue":"s"},{"boolValue":true},{},{"kvlistValue":{"values":[]}},{"arrayValue":{"values":[]}}]}}`},
		{"nesting", ` {"tool" : {"args":[["x"],{"n":null}]}} `,
			`{"kvlistValue":{"values":[{"key":"tool","value":{"kvlistValue":{"values":[{"key":"args","value":{"arrayValue":{"values":[{"arrayValue":{"values":[{"stringValue":"x"}]}},{"kvlistValue":{"values":[{"key":"n","value":{}}]}}]}}}]}}}]}}`},
		{"unicode key", `{"ключ":"значение"}`,
			`{"kvlistValue":{"values":[{"key":"ключ","value":{"stringValue":"значение"}}]}}`},
		// Enqueue accepts only valid JSON; a payload that is not is sent as
		// the string it is rather than failing the batch.
		{"not json", `{"a":`, `{"stringValue":"{\"a\":"}`},
		{"two values", `1 2`, `{"stringValue":"1 2"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendPayloadValue(nil, []byte(tt.payload)))
			if got != tt.want {
				t.Errorf("payload %s\n got %s\nwant %s", tt.payload, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("payload %s gave invalid JSON %s", tt.payload, got)
			}
		})
	}
}

// otlpRequest is the part of an OTLP/JSON ExportLogsServiceRequest the tests
// look at. Fields that must be JSON strings are json.RawMessage, so that a
// number where a string belongs fails the test.
type otlpRequest struct {
	ResourceLogs []struct {
		Resource struct {
			Attributes []otlpKV `json:"attributes"`
		} `json:"resource"`
		ScopeLogs []struct {
			Scope struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"scope"`
			LogRecords []struct {
				TimeUnixNano         json.RawMessage `json:"timeUnixNano"`
				ObservedTimeUnixNano json.RawMessage `json:"observedTimeUnixNano"`
				EventName            string          `json:"eventName"`
				Body                 json.RawMessage `json:"body"`
				Attributes           []otlpKV        `json:"attributes"`
			} `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

type otlpKV struct {
	Key   string                     `json:"key"`
	Value map[string]json.RawMessage `json:"value"`
}

// attrs flattens key-values to key → the value's JSON, e.g.
// "service.name" → `{"stringValue":"difflore"}`.
func attrs(kvs []otlpKV) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		b, _ := json.Marshal(kv.Value)
		m[kv.Key] = string(b)
	}
	return m
}

func TestOTLPRequestShape(t *testing.T) {
	s := &otlpSink{version: "1.2.3", hostname: "box"}
	created := time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC)
	observed := created.Add(time.Second)
	events := []event{
		{ID: "evt-1", Kind: "claude.PostToolUse", Payload: []byte(`{"tool":"Bash"}`), CreatedAt: created, Attempt: 1},
		{ID: "evt-2", Kind: "event", Payload: []byte(`[1]`), CreatedAt: created.Add(time.Millisecond), Attempt: 3},
	}
	var req otlpRequest
	body := s.encode(events, observed)
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("request is not JSON: %v\n%s", err, body)
	}
	if len(req.ResourceLogs) != 1 || len(req.ResourceLogs[0].ScopeLogs) != 1 {
		t.Fatalf("want one resource with one scope, got %s", body)
	}
	rl := req.ResourceLogs[0]
	wantRes := map[string]string{
		"service.name":    `{"stringValue":"difflore"}`,
		"service.version": `{"stringValue":"1.2.3"}`,
		"host.name":       `{"stringValue":"box"}`,
	}
	if got := attrs(rl.Resource.Attributes); fmt.Sprint(got) != fmt.Sprint(wantRes) {
		t.Errorf("resource attributes %v, want %v", got, wantRes)
	}
	if sc := rl.ScopeLogs[0].Scope; sc.Name != "difflore" || sc.Version != "1.2.3" {
		t.Errorf("scope %+v, want difflore 1.2.3", sc)
	}
	recs := rl.ScopeLogs[0].LogRecords
	if len(recs) != len(events) {
		t.Fatalf("%d log records, want %d", len(recs), len(events))
	}
	for i, r := range recs {
		e := events[i]
		if want := fmt.Sprintf(`"%d"`, e.CreatedAt.UnixNano()); string(r.TimeUnixNano) != want {
			t.Errorf("record %d timeUnixNano %s, want %s", i, r.TimeUnixNano, want)
		}
		if want := fmt.Sprintf(`"%d"`, observed.UnixNano()); string(r.ObservedTimeUnixNano) != want {
			t.Errorf("record %d observedTimeUnixNano %s, want %s", i, r.ObservedTimeUnixNano, want)
		}
		if r.EventName != e.Kind {
			t.Errorf("record %d eventName %q, want %q", i, r.EventName, e.Kind)
		}
		if want := string(appendPayloadValue(nil, e.Payload)); string(r.Body) != want {
			t.Errorf("record %d body %s, want %s", i, r.Body, want)
		}
		wantAttrs := map[string]string{
			"difflore.event.id":   fmt.Sprintf(`{"stringValue":%q}`, e.ID),
			"difflore.event.kind": fmt.Sprintf(`{"stringValue":%q}`, e.Kind),
			"difflore.attempt":    fmt.Sprintf(`{"intValue":"%d"}`, e.Attempt),
		}
		if got := attrs(r.Attributes); fmt.Sprint(got) != fmt.Sprint(wantAttrs) {
			t.Errorf("record %d attributes %v, want %v", i, got, wantAttrs)
		}
	}
	// Without a host name, the attribute is left out rather than empty.
	s.hostname = ""
	if err := json.Unmarshal(s.encode(events, observed), &req); err != nil {
		t.Fatal(err)
	}
	if _, ok := attrs(req.ResourceLogs[0].Resource.Attributes)["host.name"]; ok {
		t.Errorf("host.name sent with no host name")
	}
}

func TestOTLPEndpoint(t *testing.T) {
	tests := []struct {
		raw, url string // url "" means the endpoint is refused
	}{
		{"otlp+http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/logs"},
		{"otlp+http://localhost:4318/", "http://localhost:4318/v1/logs"},
		{"otlp+https://otel.example.com/prefix", "https://otel.example.com/prefix/v1/logs"},
		{"otlp+https://otel.example.com/v1/logs", "https://otel.example.com/v1/logs"},
		{"otlp+https://user:secret@otel.example.com", "https://user:secret@otel.example.com/v1/logs"},
		{"otlp+http://otel.example.com:4318", ""}, // plain http off loopback
		{"otlp+https:///v1/logs", ""},             // no host
	}
	for _, tt := range tests {
		s, err := parseEndpoint(tt.raw, "", "v", false)
		if tt.url == "" {
			if err == nil || exitCode(err) != 2 {
				t.Errorf("parseEndpoint(%q) = %v, %v; want a usage error", tt.raw, s, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseEndpoint(%q): %v", tt.raw, err)
			continue
		}
		o, ok := s.(*otlpSink)
		if !ok {
			t.Errorf("parseEndpoint(%q) = %T, want *otlpSink", tt.raw, s)
			continue
		}
		if o.url != tt.url {
			t.Errorf("parseEndpoint(%q) posts to %q, want %q", tt.raw, o.url, tt.url)
		}
		if strings.Contains(o.String(), "secret") {
			t.Errorf("parseEndpoint(%q).String() = %q shows the password", tt.raw, o.String())
		}
	}
	if _, err := parseEndpoint("otlp+http://otel.example.com:4318", "", "v", true); err != nil {
		t.Errorf("--allow-insecure: %v", err)
	}
}

// otlpServer is a loopback OTLP endpoint that records the requests it gets
// and answers with what the test sets.
type otlpServer struct {
	*httptest.Server
	mu       sync.Mutex
	status   int
	header   http.Header
	answer   string
	requests []otlpSeen
}

type otlpSeen struct {
	path   string
	header http.Header
	body   []byte // decompressed
}

func newOTLPServer(t *testing.T) *otlpServer {
	s := &otlpServer{status: 200, header: http.Header{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readRequest(r)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, otlpSeen{path: r.URL.Path, header: r.Header.Clone(), body: body})
		for k, v := range s.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		io.WriteString(w, s.answer)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *otlpServer) answerWith(status int, answer string, header ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.answer, s.header = status, answer, http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		s.header.Set(header[i], header[i+1])
	}
}

func (s *otlpServer) seen() []otlpSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]otlpSeen(nil), s.requests...)
}

func TestOTLPSendHeaders(t *testing.T) {
	srv := newOTLPServer(t)
	s, err := parseEndpointOpts("otlp+"+srv.URL, "tok-123", "1.2.3", false, otlpOptions{protocol: protocolJSON})
	if err != nil {
		t.Fatal(err)
	}
	small := []event{{ID: "a", Kind: "k", Payload: []byte(`{"x":1}`), CreatedAt: time.Now(), Attempt: 1}}
	big := []event{{ID: "b", Kind: "k", Payload: []byte(`"` + strings.Repeat("x", 2000) + `"`), CreatedAt: time.Now(), Attempt: 1}}
	for _, events := range [][]event{small, big} {
		if r := s.send(context.Background(), events); r.verdict != delivered || r.err != "" {
			t.Fatalf("send: %+v, want delivered with no error", r)
		}
	}
	got := srv.seen()
	if len(got) != 2 {
		t.Fatalf("server got %d requests, want 2", len(got))
	}
	for i, req := range got {
		h := req.header
		if req.path != "/v1/logs" {
			t.Errorf("request %d to %q, want /v1/logs", i, req.path)
		}
		if h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "difflore/1.2.3" ||
			h.Get("Authorization") != "Bearer tok-123" || h.Get("Idempotency-Key") == "" {
			t.Errorf("request %d headers %v", i, h)
		}
		if gz := h.Get("Content-Encoding") == "gzip"; gz != (i == 1) {
			t.Errorf("request %d gzipped = %v, want %v (bodies over 1 KiB only)", i, gz, i == 1)
		}
		var req2 otlpRequest
		if err := json.Unmarshal(req.body, &req2); err != nil || len(req2.ResourceLogs) != 1 {
			t.Errorf("request %d body is not a logs request: %v\n%s", i, err, req.body)
		}
	}
}

// TestOTLPAnswers checks OTLP's answer rules against a loopback server.
func TestOTLPAnswers(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		answer     string
		header     []string
		verdict    verdict
		retryAfter time.Duration
		rejected   int
		errHas     string // "" means no error text at all
	}{
		{name: "ok empty", status: 200, answer: ``, verdict: delivered},
		{name: "ok response", status: 200, answer: `{}`, verdict: delivered},
		{name: "ok empty partial success", status: 200, answer: `{"partialSuccess":{}}`, verdict: delivered},
		{name: "partial success", status: 200, answer: `{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"body too large"}}`,
			verdict: delivered, rejected: 2, errHas: "rejected 2 of 3 log records without naming them; not retried, as OTLP requires: body too large"},
		{name: "partial success as a number", status: 200, answer: `{"partialSuccess":{"rejectedLogRecords":1}}`,
			verdict: delivered, rejected: 1, errHas: "rejected 1 of 3"},
		{name: "warning only", status: 200, answer: `{"partialSuccess":{"errorMessage":"deprecated field"}}`,
			verdict: delivered, errHas: "partial success with no rejected records: deprecated field"},
		{name: "protobuf answer", status: 200, answer: "\x0a\x02\x08\x01", verdict: delivered},
		{name: "429 with Retry-After", status: 429, answer: `{"code":8,"message":"slow down"}`, header: []string{"Retry-After", "7"},
			verdict: retryLater, retryAfter: 7 * time.Second, errHas: "429 Too Many Requests: slow down"},
		{name: "502", status: 502, answer: `bad gateway`, verdict: retryLater, errHas: "502 Bad Gateway: bad gateway"},
		{name: "503", status: 503, answer: `{"code":14,"message":"unavailable"}`, header: []string{"Retry-After", "3"},
			verdict: retryLater, retryAfter: 3 * time.Second, errHas: "unavailable"},
		{name: "504", status: 504, verdict: retryLater, errHas: "504"},
		{name: "408", status: 408, verdict: retryLater, errHas: "408"},
		{name: "500 is not retried", status: 500, answer: `{"code":13,"message":"permanent"}`, header: []string{"Retry-After", "3"},
			verdict: badBatch, errHas: "500 Internal Server Error: permanent"},
		{name: "501", status: 501, verdict: badBatch, errHas: "501"},
		{name: "400", status: 400, answer: `{"code":3,"message":"bad body"}`, verdict: badBatch, errHas: "bad body"},
		{name: "413", status: 413, verdict: badBatch, errHas: "413"},
		{name: "422", status: 422, verdict: badBatch, errHas: "422"},
		{name: "401", status: 401, verdict: paused, errHas: "401"},
		{name: "403", status: 403, verdict: paused, errHas: "403"},
		{name: "404", status: 404, verdict: paused, errHas: "404"},
		{name: "405", status: 405, verdict: paused, errHas: "405"},
		{name: "415", status: 415, verdict: paused, errHas: "415"},
		{name: "token scrubbed", status: 200, answer: `{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"bad token tok-123"}}`,
			verdict: delivered, rejected: 3, errHas: "bad token [redacted]"},
	}
	srv := newOTLPServer(t)
	s, err := parseEndpointOpts("otlp+"+srv.URL, "tok-123", "1.2.3", false, otlpOptions{protocol: protocolJSON})
	if err != nil {
		t.Fatal(err)
	}
	events := []event{
		{ID: "a", Kind: "k", Payload: []byte(`1`), CreatedAt: time.Now(), Attempt: 1},
		{ID: "b", Kind: "k", Payload: []byte(`2`), CreatedAt: time.Now(), Attempt: 1},
		{ID: "c", Kind: "k", Payload: []byte(`3`), CreatedAt: time.Now(), Attempt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.answerWith(tt.status, tt.answer, tt.header...)
			r := s.send(context.Background(), events)
			if r.verdict != tt.verdict || r.status != tt.status || r.retryAfter != tt.retryAfter || r.unidentified != tt.rejected {
				t.Errorf("got verdict %d status %d retryAfter %s rejected %d; want %d %d %s %d",
					r.verdict, r.status, r.retryAfter, r.unidentified, tt.verdict, tt.status, tt.retryAfter, tt.rejected)
			}
			if len(r.rejected) != 0 {
				t.Errorf("OTLP names no rejected event, got %v", r.rejected)
			}
			if tt.errHas == "" && r.err != "" || !strings.Contains(r.err, tt.errHas) {
				t.Errorf("err %q, want it to contain %q", r.err, tt.errHas)
			}
		})
	}
}

// TestOTLPPartialSuccessDelivers drains to an endpoint that answers with a
// partial success: every event leaves the outbox (OTLP forbids retrying
// them and names none), and the count shows in the summary and in status.
func TestOTLPPartialSuccessDelivers(t *testing.T) {
	testHome(t)
	srv := newOTLPServer(t)
	srv.answerWith(200, `{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"record too old"}}`)
	for i := range 3 {
		mustCLI(t, "enqueue", "--id", fmt.Sprintf("evt-%d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	var sum drainSummary
	out := mustCLI(t, "drain", "--endpoint", "otlp+"+srv.URL, "--json")
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("drain --json: %v\n%s", err, out)
	}
	if sum.Delivered != 3 || sum.Pending != 0 || sum.Dead != 0 {
		t.Errorf("drain summary %+v, want 3 delivered, none pending or dead", sum)
	}
	if len(srv.seen()) != 1 {
		t.Errorf("endpoint got %d requests, want 1: a partial success is not retried", len(srv.seen()))
	}
	text, _, _ := cli(t, "", "status")
	if !strings.Contains(text, "delivery: last 3 events at") || !strings.Contains(text, "rejected 1 of 3 log records") ||
		!strings.Contains(text, "record too old") {
		t.Errorf("status does not show the partial success:\n%s", text)
	}
}

// TestOTLPLargeAnswer checks a partial success whose errorMessage runs past
// a MiB (a collector that lists every record it refused): it is read to its
// end, so the count and the start of the message reach the log and status,
// where an answer cut at a MiB read as a plain success and said nothing.
func TestOTLPLargeAnswer(t *testing.T) {
	t.Parallel()
	srv := newOTLPServer(t)
	s, err := parseEndpointOpts("otlp+"+srv.URL, "", "1.2.3", false, otlpOptions{protocol: protocolJSON})
	if err != nil {
		t.Fatal(err)
	}
	events := testEvents(3, `{}`)
	msg := strings.Repeat("record 7: attribute value too long; ", 40000) // 1.4 MiB
	srv.answerWith(200, `{"partialSuccess":{"errorMessage":"`+msg+`","rejectedLogRecords":"2"}}`)
	r := s.send(context.Background(), events)
	if r.verdict != delivered || r.unidentified != 2 || !strings.Contains(r.err, "rejected 2 of 3 log records") || len(r.err) > maxErrorText {
		t.Errorf("large partial success: verdict %d, rejected %d, err %.120q (%d bytes); want delivered, 2 rejected, a bounded message",
			r.verdict, r.unidentified, r.err, len(r.err))
	}
	// A 200 whose JSON breaks off is retried, as for the plain endpoint.
	srv.answerWith(200, `{"partialSuccess":{"errorMessage":"`+msg)
	if r := s.send(context.Background(), events); r.verdict != retryLater {
		t.Errorf("cut partial success: verdict %d (%s), want retryLater", r.verdict, r.err)
	}
}

// TestOTLPSessionID checks that a record carries the agent's session id as
// session.id, so that it joins the agent's own OpenTelemetry events, for
// the field each agent names it by; and no session.id when the payload has
// none at its top level.
func TestOTLPSessionID(t *testing.T) {
	tests := []struct {
		name, payload, want string // want "" for no attribute
	}{
		{"claude", `{"session_id":"558cdcc9-eca8","transcript_path":"/t","hook_event_name":"SessionStart"}`, "558cdcc9-eca8"},
		{"gemini", `{"session_id":"23441014-d1ab","hook_event_name":"BeforeAgent","prompt":"say hi"}`, "23441014-d1ab"},
		{"codex hooks", `{"session_id":"01a214fa-8c5c","turn_id":"01a214fa-8c83","hook_event_name":"UserPromptSubmit"}`, "01a214fa-8c5c"},
		{"codex notify", `{"type":"agent-turn-complete","thread-id":"b5f6c1c2-1111","turn-id":"12"}`, "b5f6c1c2-1111"},
		{"cursor", `{"conversation_id":"668320d2-2fd8","generation_id":"490b90b7","hook_event_name":"stop"}`, "668320d2-2fd8"},
		{"after other keys, pretty-printed", "{\n  \"cwd\": \"/p\",\n  \"nested\": {\"a\": [1, {\"b\": null}]},\n  \"session_id\": \"s-9\"\n}", "s-9"},
		{"session_id wins over conversation_id", `{"conversation_id":"c-1","session_id":"s-1"}`, "s-1"},
		{"escaped", `{"session_id":"a\u0062c"}`, "abc"},
		{"none", `{"tool":"Bash","cwd":"/p"}`, ""},
		{"only nested", `{"tool_input":{"session_id":"inner"},"meta":[{"conversation_id":"x"}]}`, ""},
		{"only inside a string", `{"prompt":"my session_id is 5"}`, ""},
		{"not a string", `{"session_id":42}`, ""},
		{"empty", `{"session_id":""}`, ""},
		{"not an object", `["session_id","x"]`, ""},
		{"not json", `{"session_id":"x"`, ""},
	}
	s := &otlpSink{version: "1.2.3"}
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := []event{{ID: "evt-1", Kind: "agent.Event", Payload: []byte(tt.payload), CreatedAt: now, Attempt: 1}}
			body := s.encode(events, now)
			var req otlpRequest
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("request is not JSON: %v\n%s", err, body)
			}
			got, ok := attrs(req.ResourceLogs[0].ScopeLogs[0].LogRecords[0].Attributes)["session.id"]
			switch {
			case tt.want == "" && ok:
				t.Errorf("payload %s: session.id %s, want none", tt.payload, got)
			case tt.want != "" && got != fmt.Sprintf(`{"stringValue":%q}`, tt.want):
				t.Errorf("payload %s: session.id %q, want %q", tt.payload, got, tt.want)
			}
		})
	}
}
