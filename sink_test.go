package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func noScrub(s string) string { return s }

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		retryAfter string
		body       string
		want       verdict
		wantWait   time.Duration
		wantErr    string // a part of the error text; "" wants none
	}{
		{200, "", "", delivered, 0, ""},
		{201, "", "ok", delivered, 0, ""},
		{204, "", "", delivered, 0, ""},
		{408, "", "slow", retryLater, 0, "408 Request Timeout: slow"},
		{429, "", "", retryLater, 0, "429 Too Many Requests"},
		{429, "7", "", retryLater, 7 * time.Second, "429"},
		{500, "", "boom", retryLater, 0, "500 Internal Server Error: boom"},
		{502, "", "", retryLater, 0, "502"},
		{503, now.Add(90 * time.Second).Format(http.TimeFormat), "", retryLater, 90 * time.Second, "503"},
		{504, "", "", retryLater, 0, "504"},
		{418, "", "", retryLater, 0, "418"}, // unexpected: counted, so it ends as a dead letter
		{400, "", `{"error":"bad"}`, badBatch, 0, `400 Bad Request: {"error":"bad"}`},
		{413, "", "", badBatch, 0, "413"},
		{422, "", "", badBatch, 0, "422"},
		{401, "", "who", paused, 0, "401 Unauthorized: who"},
		{403, "", "", paused, 0, "403"},
		{404, "", "", paused, 0, "404"},
		{301, "", "", paused, 0, "301"},
		{308, "", "", paused, 0, "308"},
	}
	for _, tt := range tests {
		r := classify(tt.status, tt.retryAfter, []byte(tt.body), now, noScrub)
		if r.verdict != tt.want || r.retryAfter != tt.wantWait || r.status != tt.status {
			t.Errorf("classify(%d, %q): verdict %d, wait %s, status %d; want %d, %s", tt.status, tt.retryAfter, r.verdict, r.retryAfter, r.status, tt.want, tt.wantWait)
		}
		if tt.wantErr == "" && r.err != "" || !strings.Contains(r.err, tt.wantErr) {
			t.Errorf("classify(%d): error %q, want it to contain %q", tt.status, r.err, tt.wantErr)
		}
	}
}

func TestReadRejected(t *testing.T) {
	events := []event{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	scrub := func(s string) string { return strings.ReplaceAll(s, "secret-token", "[redacted]") }
	body := `{"accepted":1,"rejected":[{"id":"a","error":"bad field secret-token","retryable":false},{"id":"b","error":"busy","retryable":true},{"error":"no id"},{"id":"zz","error":"not sent"}],"more":{"x":[1,{"y":null}]}}`
	got, err := readRejected(strings.NewReader(body), events, scrub)
	want := []rejection{{ID: "a", Error: "bad field [redacted]"}, {ID: "b", Error: "busy", Retryable: true}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("readRejected = %+v, %v; want %+v", got, err, want)
	}
	// Answers that name no event reject nothing, and are read as such.
	for _, body := range []string{"", "  ", "ok", "<html>", "[1,2]", `{}`, `{"rejected":"x"}`, `{"rejected":null}`, `{"rejected":{"id":"a"}}`,
		`{"accepted":3}`, `{"rejected":[1,"a",{"id":7}]}`, ` {"rejected":[]} trailing`} {
		if got, err := readRejected(strings.NewReader(body), events, noScrub); len(got) != 0 || err != nil {
			t.Errorf("readRejected(%q) = %+v, %v; want none", body, got, err)
		}
	}
	// An entry with a field of the wrong type still names its event.
	if got, err := readRejected(strings.NewReader(`{"rejected":[{"id":"c","error":5,"retryable":true}]}`), events, noScrub); err != nil || len(got) != 1 || got[0].ID != "c" {
		t.Errorf("entry with a number for its error: %+v, %v; want c rejected", got, err)
	}
	// A JSON object that cannot be read to its end may have rejected any
	// event: an error, so the batch is sent again.
	for _, body := range []string{`{`, `{"rejected":[`, `{"rejected":[{"id":"a"}`, `{"rejected":[{"id":"a"}]`, `{"rejected":[{"id":"a"},]}`, `{"x":tru}`, `{"x":"unterminated`} {
		if got, err := readRejected(strings.NewReader(body), events, noScrub); err == nil {
			t.Errorf("readRejected(%q) = %+v, nil; want an error", body, got)
		}
	}
}

func TestClassifyBoundsAndScrubs(t *testing.T) {
	body := strings.Repeat("é", 3000) // 6000 bytes, cut inside a rune
	r := classify(400, "", []byte("token=s3cr3t "+body), time.Now(), func(s string) string { return strings.ReplaceAll(s, "s3cr3t", "[redacted]") })
	if len(r.err) > maxErrorText {
		t.Errorf("error is %d bytes, want at most %d", len(r.err), maxErrorText)
	}
	if strings.Contains(r.err, "s3cr3t") || !strings.Contains(r.err, "[redacted]") {
		t.Errorf("error not scrubbed: %.80q", r.err)
	}
	if !strings.HasSuffix(r.err, "é…") {
		t.Errorf("error should end in a whole rune and an ellipsis: %q", r.err[len(r.err)-8:])
	}
	if got := bound("short"); got != "short" {
		t.Errorf("bound(short) = %q", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"30", 30 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-5", 0},
		{"soon", 0},
		{"99999999999999", time.Hour}, // capped at an hour
		{now.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
		{now.Add(3 * time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(2 * time.Minute).Format(time.RFC850), 2 * time.Minute},
		{now.Add(time.Minute).Format(time.ANSIC), time.Minute},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func testEvents(n int, payload string) []event {
	created := time.Date(2026, 11, 25, 18, 0, 0, 123e6, time.UTC)
	var evs []event
	for i := range n {
		evs = append(evs, event{Seq: int64(i + 1), ID: "evt-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Kind: "event", Payload: []byte(payload), CreatedAt: created, Attempt: 1})
	}
	return evs
}

func TestIdempotencyKey(t *testing.T) {
	a := testEvents(3, `{}`)
	b := []event{a[2], a[0], a[1]}
	b[0].Attempt = 7 // the attempt is not part of the batch's identity
	tests := []struct {
		name string
		x, y []event
		same bool
	}{
		{"same events", a, testEvents(3, `{}`), true},
		{"any order, any attempt", a, b, true},
		{"other payload, same ids", a, testEvents(3, `{"x":1}`), true},
		{"one event fewer", a, a[:2], false},
		{"another event", a[:2], []event{a[0], a[2]}, false},
		{"ids that join alike", []event{{ID: "ab"}, {ID: "c"}}, []event{{ID: "a"}, {ID: "bc"}}, false},
	}
	for _, tt := range tests {
		kx, ky := idempotencyKey(tt.x), idempotencyKey(tt.y)
		if (kx == ky) != tt.same {
			t.Errorf("%s: keys %s and %s, want same=%v", tt.name, kx, ky, tt.same)
		}
		if len(kx) != 32 {
			t.Errorf("%s: key %q is not 32 hex digits", tt.name, kx)
		}
	}
}

// wireBatch is a request body as the endpoint sees it.
type wireBatch struct {
	Events []wireEvent `json:"events"`
}

type wireEvent struct {
	ID        string          `json:"id"`
	Kind      string          `json:"kind"`
	CreatedAt string          `json:"created_at"`
	Attempt   int             `json:"attempt"`
	Payload   json.RawMessage `json:"payload"`
}

func TestEncodeBatch(t *testing.T) {
	tests := []struct {
		name   string
		events []event
		want   string
	}{
		{"empty", nil, `{"events":[]}`},
		{"one", []event{{ID: "e1", Kind: "k.x", Payload: []byte(`{"a": [1, 2]}`), CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("x", 3600)), Attempt: 3}},
			`{"events":[{"id":"e1","kind":"k.x","created_at":"2026-01-02T02:04:05.006Z","attempt":3,"payload":{"a": [1, 2]}}]}`},
		{"two", []event{{ID: "a", Kind: "k", Payload: []byte(`1`), CreatedAt: time.UnixMilli(0), Attempt: 1}, {ID: "b", Kind: "k", Payload: []byte(`"s"`), CreatedAt: time.UnixMilli(0), Attempt: 20}},
			`{"events":[{"id":"a","kind":"k","created_at":"1970-01-01T00:00:00.000Z","attempt":1,"payload":1},{"id":"b","kind":"k","created_at":"1970-01-01T00:00:00.000Z","attempt":20,"payload":"s"}]}`},
	}
	for _, tt := range tests {
		got := encodeBatch(tt.events)
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: not valid JSON", tt.name)
		}
		// claim budgets each event at payload+id+kind+eventOverhead bytes;
		// the real encoding must never be larger.
		size := batchFrame
		for _, e := range tt.events {
			size += len(e.Payload) + len(e.ID) + len(e.Kind) + eventOverhead
		}
		if len(got) > size {
			t.Errorf("%s: encoded %d bytes, more than the %d claim budgets", tt.name, len(got), size)
		}
	}
}

// recorded is one request an endpoint received.
type recorded struct {
	header http.Header
	raw    []byte // the body, decompressed
	batch  wireBatch
	err    error // why the body could not be read
}

func (r recorded) ids() []string {
	var ids []string
	for _, e := range r.batch.Events {
		ids = append(ids, e.ID)
	}
	return ids
}

// answer is what a scripted endpoint says to one request.
type answer struct {
	status int
	header map[string]string
	body   string
	hang   bool // block until the client gives up or the test ends
}

// endpoint is a loopback ingest endpoint with scripted answers. It records
// every request, decoded, and answers with script(request number, request).
type endpoint struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	script func(n int, r recorded) answer
	got    chan recorded // every request, if not nil; never blocks the handler for long
	closed chan struct{}
}

func newEndpoint(t testing.TB, script func(n int, r recorded) answer) *endpoint {
	t.Helper()
	ep := &endpoint{script: script, got: make(chan recorded, 10000), closed: make(chan struct{})}
	ep.Server = httptest.NewServer(http.HandlerFunc(ep.serve))
	t.Cleanup(func() {
		close(ep.closed) // unblock hanging handlers before Close waits for them
		ep.Close()
	})
	return ep
}

func (ep *endpoint) serve(w http.ResponseWriter, req *http.Request) {
	rec := recorded{header: req.Header.Clone()}
	rec.raw, rec.err = readRequest(req)
	if rec.err == nil {
		rec.err = json.Unmarshal(rec.raw, &rec.batch)
	}
	ep.mu.Lock()
	n := len(ep.reqs)
	ep.reqs = append(ep.reqs, rec)
	ep.mu.Unlock()
	select {
	case ep.got <- rec:
	default:
	}
	a := answer{status: 200}
	if ep.script != nil {
		a = ep.script(n, rec)
	}
	if a.hang {
		select {
		case <-req.Context().Done():
		case <-ep.closed:
		}
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (ep *endpoint) requests() []recorded {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return append([]recorded(nil), ep.reqs...)
}

// next waits for the next request the endpoint receives.
func (ep *endpoint) next(t testing.TB, timeout time.Duration) recorded {
	t.Helper()
	select {
	case r := <-ep.got:
		return r
	case <-time.After(timeout):
		t.Fatalf("endpoint: no request within %s", timeout)
		return recorded{}
	}
}

func testSink(t testing.TB, url, token string) *httpSink {
	t.Helper()
	s, err := parseEndpoint(url, token, "1.2.3", false)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*httpSink)
}

func TestHTTPSinkWire(t *testing.T) {
	ep := newEndpoint(t, nil)
	s := testSink(t, ep.URL, "tok-123")
	small := testEvents(2, `{"n":1}`)
	big := testEvents(40, `{"text":"`+strings.Repeat("word ", 20)+`"}`)
	for _, tt := range []struct {
		name   string
		events []event
		gzip   bool
	}{{"small body", small, false}, {"body over 1 KiB", big, true}} {
		if r := s.send(context.Background(), tt.events); r.verdict != delivered || r.status != 200 {
			t.Fatalf("%s: send = %+v, want delivered", tt.name, r)
		}
		req := ep.next(t, 5*time.Second)
		if req.err != nil {
			t.Fatalf("%s: body: %v", tt.name, req.err)
		}
		h := req.header
		checks := map[string]string{
			"Content-Type":    "application/json",
			"User-Agent":      "difflore/1.2.3",
			"Authorization":   "Bearer tok-123",
			"Idempotency-Key": idempotencyKey(tt.events),
		}
		for k, want := range checks {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", tt.name, k, got, want)
			}
		}
		if got := h.Get("Content-Encoding") == "gzip"; got != tt.gzip {
			t.Errorf("%s: gzip = %v, want %v", tt.name, got, tt.gzip)
		}
		if !bytes.Equal(req.raw, encodeBatch(tt.events)) {
			t.Errorf("%s: body differs from encodeBatch", tt.name)
		}
		if len(req.batch.Events) != len(tt.events) || req.batch.Events[0].Attempt != 1 || string(req.batch.Events[0].Payload) != string(tt.events[0].Payload) {
			t.Errorf("%s: decoded batch %+v", tt.name, req.batch.Events[0])
		}
	}
	// No token, no Authorization header.
	testSink(t, ep.URL, "").send(context.Background(), small)
	if got := ep.next(t, 5*time.Second).header.Get("Authorization"); got != "" {
		t.Errorf("Authorization without a token = %q", got)
	}
}

func TestHTTPSinkAnswers(t *testing.T) {
	// The sink end of the answer table: status, headers and body, as the
	// drainer gets them.
	date := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		a       answer
		want    verdict
		minWait time.Duration
		maxWait time.Duration
		errHas  string
	}{
		{"200", answer{status: 200}, delivered, 0, 0, ""},
		{"429 seconds", answer{status: 429, header: map[string]string{"Retry-After": "42"}}, retryLater, 42 * time.Second, 42 * time.Second, "429"},
		{"503 date", answer{status: 503, header: map[string]string{"Retry-After": date}}, retryLater, 110 * time.Second, 2 * time.Minute, "503"},
		{"redirect", answer{status: 302, header: map[string]string{"Location": "https://elsewhere.example/"}}, paused, 0, 0, "redirect to https://elsewhere.example/ not followed"},
		{"401 echoing the token", answer{status: 401, body: "bad token tok-123"}, paused, 0, 0, "bad token [redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newEndpoint(t, func(int, recorded) answer { return tt.a })
			r := testSink(t, ep.URL, "tok-123").send(context.Background(), testEvents(1, `{}`))
			if r.verdict != tt.want || r.retryAfter < tt.minWait || r.retryAfter > tt.maxWait || !strings.Contains(r.err, tt.errHas) {
				t.Errorf("send = %+v; want verdict %d, wait in [%s, %s], error with %q", r, tt.want, tt.minWait, tt.maxWait, tt.errHas)
			}
			if strings.Contains(r.err, "tok-123") {
				t.Errorf("error shows the token: %q", r.err)
			}
			if n := len(ep.requests()); n != 1 {
				t.Errorf("%d requests, want 1 (redirects are not followed)", n)
			}
		})
	}
}

func TestHTTPSinkNetworkErrorAndTimeout(t *testing.T) {
	t.Parallel()
	ep := newEndpoint(t, func(int, recorded) answer { return answer{hang: true} })
	s := testSink(t, ep.URL, "")
	s.timeout = 200 * time.Millisecond
	// The endpoint never answers: only the sink's own timeout can end the
	// send, before the bound below, which is there so a broken timeout
	// fails rather than hangs.
	sent := make(chan result, 1)
	go func() { sent <- s.send(context.Background(), testEvents(1, `{}`)) }()
	var r result
	select {
	case r = <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("send to a hanging endpoint still waits 30 s on: its timeout did not apply")
	}
	if r.verdict != retryLater || r.status != 0 || r.err == "" {
		t.Errorf("hanging endpoint: %+v, want retryLater with an error", r)
	}
	if s := testSink(t, "http://127.0.0.1:15", "").send(context.Background(), testEvents(1, `{}`)); s.verdict != retryLater || s.err == "" {
		t.Errorf("refused connection: %+v, want retryLater", s)
	}
	if got := testSink(t, "http://127.0.0.1:1", "").timeout; got != 15*time.Second {
		t.Errorf("request timeout %s, want 15s", got)
	}
}

func TestHTTPSinkBrokenAnswerRetries(t *testing.T) {
	// A 2xx whose body breaks off may have listed rejected events; acking
	// the batch could lose them.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, `{"rejected":[`)
	}))
	defer srv.Close()
	r := testSink(t, srv.URL, "").send(context.Background(), testEvents(1, `{}`))
	if r.verdict != retryLater {
		t.Errorf("broken 2xx answer: %+v, want retryLater", r)
	}
}

func TestHTTPSinkAnswerPastLimitRetries(t *testing.T) {
	// An answer that goes on past maxAnswer is not read to its end, so it
	// may have rejected any event: the batch is sent again. One that is
	// not a JSON object names no event, however long.
	evs := testEvents(2, `{}`)
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer srv.Close()
	s := testSink(t, srv.URL, "")
	s.maxAnswer = 1 << 10
	for _, tt := range []struct {
		body string
		want verdict
	}{
		{`{"rejected":[{"id":"` + evs[0].ID + `","error":"` + strings.Repeat("x", 2000) + `","retryable":true}]}`, retryLater},
		{`{"padding":"` + strings.Repeat("x", 2000) + `","rejected":[]}`, retryLater},
		{`{"rejected":[{"id":"` + evs[1].ID + `","error":"busy","retryable":true}]}`, delivered},
		{strings.Repeat("<p>ok</p>", 1000), delivered},
	} {
		body = tt.body
		r := s.send(context.Background(), evs)
		if r.verdict != tt.want {
			t.Errorf("answer of %d bytes %.30q…: verdict %d (%s), want %d", len(tt.body), tt.body, r.verdict, r.err, tt.want)
		}
		if tt.want == retryLater && !strings.Contains(r.err, "past 1024 bytes") {
			t.Errorf("error %q, want it to say the answer was too long", r.err)
		}
	}
}

func TestFileSink(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := parseEndpoint(fileURL(path), "", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	evs := testEvents(3, `{"a":1}`)
	if r := s.send(context.Background(), evs[:2]); r.verdict != delivered {
		t.Fatalf("send: %+v", r)
	}
	if r := s.send(context.Background(), evs[2:]); r.verdict != delivered {
		t.Fatalf("send: %+v", r)
	}
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	for i, l := range lines {
		var e wireEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID != evs[i].ID || string(e.Payload) != `{"a":1}` {
			t.Errorf("line %d = %s (%v)", i, l, err)
		}
	}
	bad := &fileSink{path: filepath.Join(t.TempDir(), "no", "such", "dir", "x")}
	if r := bad.send(context.Background(), evs); r.verdict != retryLater {
		t.Errorf("unwritable file: %+v, want retryLater", r)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && os.PathSeparator == '/' {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestFileSinkOneLinePerEvent: a payload written across several lines (a
// hook that pretty-prints its JSON) still takes one line of the file, so
// that every line is one JSON value; its value is unchanged, since JSON
// allows a line break only as white space between tokens.
func TestFileSinkOneLinePerEvent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	const payload = "{\r\n  \"prompt\": \"two\\nlines\",\n  \"n\": [1,\n 2]\n}"
	evs := testEvents(2, payload)
	if r := (&fileSink{path: path}).send(context.Background(), evs); r.verdict != delivered {
		t.Fatalf("send: %+v", r)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per event: %q", len(lines), lines)
	}
	var want any
	if err := json.Unmarshal([]byte(payload), &want); err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		var e struct {
			ID      string
			Payload any
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID != evs[i].ID || !reflect.DeepEqual(e.Payload, want) {
			t.Errorf("line %d = %s (%v), want event %s with its payload's value", i+1, l, err, evs[i].ID)
		}
	}
}

// TestFileSinkStartsOnAFreshLine: a file that ends inside a line (another
// writer's, or one cut short by a crash) gets the batch on a line of its
// own, not glued onto that line.
func TestFileSinkStartsOnAFreshLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	const torn = `{"id":"other","kind":"x","pay`
	if err := os.WriteFile(path, []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}
	evs := testEvents(2, `{"a":1}`)
	if r := (&fileSink{path: path}).send(context.Background(), evs); r.verdict != delivered {
		t.Fatalf("send: %+v", r)
	}
	lines := readLines(t, path)
	if len(lines) != 3 || lines[0] != torn {
		t.Fatalf("file is %q, want the torn line kept as it was and two lines after it", lines)
	}
	for i, l := range lines[1:] {
		var e wireEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID != evs[i].ID {
			t.Errorf("line %d = %s (%v), want event %s", i+2, l, err, evs[i].ID)
		}
	}
}

// TestUndoAppend cuts a file opened for appending back to where a failed
// batch began, on every OS (Windows cannot truncate through a handle opened
// for appending), and leaves it alone when someone else wrote after it.
func TestUndoAppend(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(`{"torn":`)
	if err := undoAppend(f, path, 3, 11); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "{}\n" {
		t.Errorf("after undo the file holds %q, want %q", data, "{}\n")
	}
	f.WriteString(`{"torn":`)
	const other = "{}\n{\"torn\":{\"other\":1}\n" // another writer appended after the torn part
	if err := os.WriteFile(path, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := undoAppend(f, path, 3, 11); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != other {
		t.Errorf("undo cut a file another writer had appended to: %q", data)
	}
}

// checkJSONLines checks that every line of a JSON-lines file is JSON and
// that it holds each of ids exactly once.
func checkJSONLines(t *testing.T, path string, ids []string) {
	t.Helper()
	seen := map[string]int{}
	for i, l := range readLines(t, path) {
		var e wireEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("line %d is not JSON (%v): %.120q", i+1, err, l)
			continue
		}
		seen[e.ID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("event %s is in the file %d times, want once", id, seen[id])
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@ingest.example.com/v1":            "https://ingest.example.com/v1",
		"https://ingest.example.com/v1?api_key=s3cr3t&x=1": "https://ingest.example.com/v1?api_key=redacted&x=redacted",
		"file:///tmp/out.jsonl":                            "file:///tmp/out.jsonl",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLargeRejectingAnswerDeletesNothing drains 4000 events to an endpoint
// that answers 200 with a rejection of every one of them, retryable: an
// answer well over a MiB. Every event must stay in the outbox; an answer
// that was cut and then read as "rejects nothing" acknowledged them all.
func TestLargeRejectingAnswerDeletesNothing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	const n = 4000
	reason := strings.Repeat("the ingest queue is full, try again later; ", 6)
	ep := newEndpoint(t, func(_ int, r recorded) answer {
		var b strings.Builder
		b.WriteString(`{"accepted":0,"rejected":[`)
		for i, id := range r.ids() {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%q,"error":%q,"retryable":true}`, id, reason)
		}
		b.WriteString(`]}`)
		return answer{status: 200, body: b.String()}
	})
	h, err := openHome(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	ob := mustOutbox(t, h, time.Now)
	err = ob.immediate(func() error {
		for i := range n {
			if err := ob.insert(fmt.Sprintf("evt-%04d", i), "event", []byte(`{}`), time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	ob.Close()
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, code := e.cli("", "drain", "--endpoint", ep.URL, "--batch", "4000", "--json")
	// drain goes on while events are ready, and per-event jitter makes
	// some of the rejected ready again within its run: the first request
	// is the one that matters.
	reqs := ep.requests()
	if len(reqs) == 0 || len(reqs[0].ids()) != n {
		t.Fatalf("endpoint got %d requests, want a first one of %d events\n%s%s", len(reqs), n, out, errOut)
	}
	c := outboxCounts(t, dir)
	if c.Pending != n || c.Dead != 0 {
		t.Fatalf("after a 200 rejecting all %d events: %d pending, %d dead, want all %d pending (drain exit %d: %s%s)",
			n, c.Pending, c.Dead, n, code, out, errOut)
	}
}

// TestPauseHints: an answer that pauses delivery says what a person can do
// about it, since the pause lasts until they do; an answer with no body
// ends at its status, with no dangling colon.
func TestPauseHints(t *testing.T) {
	for _, tc := range []struct {
		status   int
		tokenSet bool
		want     string
	}{
		{401, false, "401 Unauthorized; hint: no token is set: printf '%s\\n' \"$TOKEN\" | difflore config set token -"},
		{403, true, "403 Forbidden; hint: the endpoint refused the token"},
		{404, true, "404 Not Found; hint: nothing answers at that path"},
		{302, false, "302 Found; hint: the endpoint moved and difflore follows no redirect"},
	} {
		r := withPauseHint(classify(tc.status, "", nil, time.Now(), func(s string) string { return s }), tc.tokenSet)
		if r.verdict != paused || !strings.HasPrefix(r.err, tc.want) {
			t.Errorf("%d (token set %v): verdict %v, %q; want paused and %q", tc.status, tc.tokenSet, r.verdict, r.err, tc.want)
		}
	}
	if r := withPauseHint(classify(503, "", nil, time.Now(), func(s string) string { return s }), false); strings.Contains(r.err, "hint") {
		t.Errorf("a 503 is retried, not paused: no hint, got %q", r.err)
	}
}
