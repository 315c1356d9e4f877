package otel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// difflore is the product binary, built once by TestMain from the
// repository root.
var difflore string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "difflore-otel-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		difflore = filepath.Join(dir, "difflore")
		build := exec.Command("go", "build", "-o", difflore, ".")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build difflore: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// home is one difflore data home in a temporary folder, never the user's.
type home struct {
	t   *testing.T
	dir string
}

func newHome(t *testing.T) *home {
	return &home{t: t, dir: filepath.Join(t.TempDir(), "home")}
}

// run runs difflore with args in this home, with a bounded time, and
// returns its standard output and exit code.
func (h *home) run(args ...string) (string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, difflore, args...)
	cmd.Env = append(os.Environ(), "DIFFLORE_HOME="+h.dir, "DIFFLORE_CLOUD_URL=", "DIFFLORE_CLOUD_TOKEN=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		h.t.Fatalf("difflore %s: %v", strings.Join(args, " "), err)
	}
	if stderr.Len() > 0 {
		h.t.Logf("difflore %s: stderr: %s", strings.Join(args, " "), stderr.Bytes())
	}
	return stdout.String(), cmd.ProcessState.ExitCode()
}

func (h *home) mustRun(args ...string) string {
	h.t.Helper()
	out, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("difflore %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// startDaemon starts 'difflore run --detach' towards endpoint and stops it
// when the test ends; a failed test shows the daemon's log.
func (h *home) startDaemon(endpoint string) {
	h.t.Helper()
	h.mustRun("run", "--detach", "--endpoint", endpoint)
	h.t.Cleanup(func() {
		h.run("stop")
		if h.t.Failed() {
			log, _ := os.ReadFile(filepath.Join(h.dir, "daemon.log"))
			h.t.Logf("daemon.log:\n%s", log)
		}
	})
}

// daemonStatus is the part of 'difflore status --json' the tests read.
type daemonStatus struct {
	Outbox struct {
		Pending  int `json:"pending"`
		Inflight int `json:"inflight"`
		Dead     int `json:"dead"`
	} `json:"outbox"`
	Delivery struct {
		LastError string `json:"last_error"`
	} `json:"delivery"`
}

func (h *home) status() daemonStatus {
	h.t.Helper()
	out, _ := h.run("status", "--json") // exit 0 running, 3 not running
	var st daemonStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		h.t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// freeAddr is a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startReceiver starts the Collector's OTLP receiver, HTTP only, on addr,
// passing the logs it receives to next and the spans to a sink that keeps
// them. It is shut down when the test ends.
func startReceiver(t *testing.T, addr string, next consumer.Logs) {
	t.Helper()
	startReceiverTraces(t, addr, next, new(consumertest.TracesSink))
}

// startReceiverTraces is startReceiver with the consumer of the spans.
func startReceiverTraces(t *testing.T, addr string, next consumer.Logs, spans consumer.Traces) {
	t.Helper()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = addr
	// The logs and traces receivers of one config share one server.
	lr, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, next)
	if err != nil {
		t.Fatalf("create otlp receiver: %v", err)
	}
	tr, err := f.CreateTraces(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, spans)
	if err != nil {
		t.Fatalf("create otlp traces receiver: %v", err)
	}
	for _, r := range []interface {
		Start(context.Context, component.Host) error
		Shutdown(context.Context) error
	}{lr, tr} {
		if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			t.Fatalf("start otlp receiver on %s: %v", addr, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Shutdown(ctx); err != nil {
				t.Errorf("shut down otlp receiver: %v", err)
			}
		})
	}
}

// waitFor polls cond until it holds or timeout passes: what it waits for
// happens in another process, which announces nothing.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// record is one log record as the collector received it.
type record struct {
	resource pcommon.Map
	lr       plog.LogRecord
}

// records flattens what a sink received.
func records(all []plog.Logs) []record {
	var out []record
	for _, ld := range all {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					out = append(out, record{resource: rl.Resource().Attributes(), lr: lr})
				}
			}
		}
	}
	return out
}

func attr(m pcommon.Map, key string) (pcommon.Value, bool) { return m.Get(key) }

// payloads covers every JSON type and the values most easily damaged on the
// way: integers beyond float64's precision and beyond int64, floats, null,
// empty containers, unicode and escapes. want is the body as the collector
// holds it (pcommon.Value.AsRaw).
var payloads = []struct {
	id, kind, payload string
	want              any
}{
	{"evt-nested", "claude.PostToolUse", `{"session":{"id":"s-1","turns":[{"role":"user","n":1},{"role":"tool","ok":true,"args":["ls","-l"]}]}}`,
		map[string]any{"session": map[string]any{"id": "s-1", "turns": []any{
			map[string]any{"role": "user", "n": int64(1)},
			map[string]any{"role": "tool", "ok": true, "args": []any{"ls", "-l"}},
		}}}},
	{"evt-ints", "event", `{"max":9223372036854775807,"min":-9223372036854775808,"precise":9007199254740993,"huge":123456789012345678901234567890,"neg":-42}`,
		map[string]any{"max": int64(9223372036854775807), "min": int64(-9223372036854775808), "precise": int64(9007199254740993),
			"huge": "123456789012345678901234567890", "neg": int64(-42)}},
	{"evt-floats", "event", `[0.1,-2.5e-8,1e300,3.141592653589793,1.0,-0.5]`,
		[]any{0.1, -2.5e-8, 1e300, 3.141592653589793, 1.0, -0.5}},
	{"evt-bools", "event", `{"t":true,"f":false,"n":null}`,
		map[string]any{"t": true, "f": false, "n": nil}},
	{"evt-empty", "event", `{"o":{},"a":[]}`,
		map[string]any{"o": map[string]any{}, "a": []any{}}},
	{"evt-unicode", "gemini.AfterTool", `{"ключ":"значение","emoji😀":"héllo ☃ 中文","esc":"tab\tnl\nquote\"nul\u0000"}`,
		map[string]any{"ключ": "значение", "emoji😀": "héllo ☃ 中文", "esc": "tab\tnl\nquote\"nul\u0000"}},
	{"evt-string", "event", `"just a string"`, "just a string"},
	{"evt-int", "event", `42`, int64(42)},
	{"evt-null", "event", `null`, nil},
	{"evt-bool", "event", `false`, false},
	// Big enough that the request is gzipped.
	{"evt-large", "codex.notify", `{"blob":"` + strings.Repeat("0123456789", 500) + `"}`,
		map[string]any{"blob": strings.Repeat("0123456789", 500)}},
}

// TestDeliversToCollector enqueues events of every shape and checks that
// each reaches the Collector's OTLP receiver once, with payload, kind, id,
// attempt and resource intact.
func TestDeliversToCollector(t *testing.T) {
	h := newHome(t)
	before := time.Now()
	for _, p := range payloads {
		h.mustRun("enqueue", "--id", p.id, "--kind", p.kind, p.payload)
	}
	after := time.Now()

	addr := freeAddr(t)
	sink := new(consumertest.LogsSink)
	startReceiver(t, addr, sink)
	h.startDaemon("otlp+http://" + addr)
	waitFor(t, 30*time.Second, "every event at the collector", func() bool { return sink.LogRecordCount() >= len(payloads) })
	h.mustRun("stop") // Nothing more can arrive after this.

	host, _ := os.Hostname()
	byID := map[string]record{}
	for _, r := range records(sink.AllLogs()) {
		id, ok := attr(r.lr.Attributes(), "difflore.event.id")
		if !ok {
			t.Errorf("record without difflore.event.id: %v", r.lr.Attributes().AsRaw())
			continue
		}
		if _, dup := byID[id.Str()]; dup {
			t.Errorf("event %s arrived twice", id.Str())
		}
		byID[id.Str()] = r
		res := r.resource.AsRaw()
		if res["service.name"] != "difflore" || res["service.version"] == "" || res["host.name"] != host {
			t.Errorf("resource attributes %v, want service.name difflore, a service.version and host.name %q", res, host)
		}
	}
	for _, p := range payloads {
		r, ok := byID[p.id]
		if !ok {
			t.Errorf("event %s never arrived", p.id)
			continue
		}
		if got := r.lr.Body().AsRaw(); !reflect.DeepEqual(got, p.want) {
			t.Errorf("event %s body\n got %#v\nwant %#v", p.id, got, p.want)
		}
		if r.lr.EventName() != p.kind {
			t.Errorf("event %s eventName %q, want %q", p.id, r.lr.EventName(), p.kind)
		}
		a := r.lr.Attributes().AsRaw()
		if a["difflore.event.kind"] != p.kind || a["difflore.attempt"] != int64(1) {
			t.Errorf("event %s attributes %v, want kind %q and attempt 1", p.id, a, p.kind)
		}
		ts := r.lr.Timestamp().AsTime()
		if ts.Before(before.Add(-time.Millisecond)) || ts.After(after) {
			t.Errorf("event %s timestamp %s, want the enqueue time, between %s and %s", p.id, ts, before, after)
		}
		if obs := r.lr.ObservedTimestamp().AsTime(); obs.Before(ts) {
			t.Errorf("event %s observed at %s, before its timestamp %s", p.id, obs, ts)
		}
	}
	// Object keys arrive in the order they were written.
	if r, ok := byID["evt-ints"]; ok {
		var keys []string
		for k := range r.lr.Body().Map().All() {
			keys = append(keys, k)
		}
		if want := []string{"max", "min", "precise", "huge", "neg"}; !reflect.DeepEqual(keys, want) {
			t.Errorf("keys arrived as %v, want %v", keys, want)
		}
	}
	if st := h.status(); st.Outbox.Pending+st.Outbox.Inflight+st.Outbox.Dead != 0 || st.Delivery.LastError != "" {
		t.Errorf("after delivery: status %+v, want an empty outbox and no error", st)
	}
}

// TestSessionIDAtCollector enqueues hook payloads as each agent sends them
// and checks that each record reaches the Collector with the agent's
// session id as its session.id attribute, the attribute the agents' own
// OpenTelemetry events carry, and that a payload without one gets none.
func TestSessionIDAtCollector(t *testing.T) {
	h := newHome(t)
	events := []struct{ id, kind, payload, session string }{
		{"evt-claude", "claude.SessionStart", `{"session_id":"558cdcc9-eca8-448a-8061-64b5629eccb2","transcript_path":"/home/dev/.claude/projects/p/558cdcc9.jsonl","cwd":"/home/dev/project","hook_event_name":"SessionStart","source":"startup"}`, "558cdcc9-eca8-448a-8061-64b5629eccb2"},
		{"evt-gemini", "gemini.BeforeAgent", `{"session_id":"23441014-d1ab-4209-892e-060ee841da7c","cwd":"/home/dev/project","hook_event_name":"BeforeAgent","timestamp":"2026-11-25T23:06:44.334Z","prompt":"say hi"}`, "23441014-d1ab-4209-892e-060ee841da7c"},
		{"evt-codex", "codex.UserPromptSubmit", `{"session_id":"01a214fa-8c5c-7ae3-a576-403c06352d9f","turn_id":"01a214fa-8c83-7812-bb1f-715e31877f3c","hook_event_name":"UserPromptSubmit","prompt":"say hi"}`, "01a214fa-8c5c-7ae3-a576-403c06352d9f"},
		{"evt-cursor", "cursor.stop", `{"conversation_id":"668320d2-2fd8-4888-8a4b-ea8ba6c5e4d9","generation_id":"490b90b7-a2ce-4c2c-bb76-cb77b125df2f","hook_event_name":"stop","status":"completed","loop_count":0}`, "668320d2-2fd8-4888-8a4b-ea8ba6c5e4d9"},
		{"evt-none", "event", `{"tool":"Bash"}`, ""},
	}
	for _, e := range events {
		h.mustRun("enqueue", "--id", e.id, "--kind", e.kind, e.payload)
	}
	addr := freeAddr(t)
	sink := new(consumertest.LogsSink)
	startReceiver(t, addr, sink)
	h.startDaemon("otlp+http://" + addr)
	waitFor(t, 30*time.Second, "every event at the collector", func() bool { return sink.LogRecordCount() >= len(events) })
	h.mustRun("stop")

	got := map[string]record{}
	for _, r := range records(sink.AllLogs()) {
		id, _ := r.lr.Attributes().Get("difflore.event.id")
		got[id.Str()] = r
	}
	for _, e := range events {
		r, ok := got[e.id]
		if !ok {
			t.Errorf("event %s never arrived", e.id)
			continue
		}
		sid, has := r.lr.Attributes().Get("session.id")
		switch {
		case e.session == "" && has:
			t.Errorf("event %s: session.id %q, want none", e.id, sid.AsString())
		case e.session != "" && !has:
			t.Errorf("event %s: no session.id, want %q", e.id, e.session)
		case e.session != "" && (sid.Type() != pcommon.ValueTypeStr || sid.Str() != e.session):
			t.Errorf("event %s: session.id %s %q, want the string %q", e.id, sid.Type(), sid.AsString(), e.session)
		}
	}
}

// flakyConsumer fails its first failures calls with a retryable error that
// asks, as the collector's throttling does, to wait retryDelay; then it
// passes logs on to the sink.
type flakyConsumer struct {
	*consumertest.LogsSink
	failures   int
	retryDelay time.Duration

	mu        sync.Mutex
	calls     int
	lastFail  time.Time
	firstPass time.Time
}

func (c *flakyConsumer) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	c.mu.Lock()
	c.calls++
	if c.calls <= c.failures {
		c.lastFail = time.Now()
		c.mu.Unlock()
		st, err := status.New(codes.Unavailable, "not ready yet").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(c.retryDelay)})
		if err != nil {
			return err
		}
		return st.Err() // 503 with Retry-After on OTLP/HTTP
	}
	if c.firstPass.IsZero() {
		c.firstPass = time.Now()
	}
	c.mu.Unlock()
	return c.LogsSink.ConsumeLogs(ctx, ld)
}

// TestRetriesUntilCollectorAccepts has the collector answer 503 with
// Retry-After twice: the events arrive after the retries, each once, and
// no sooner than the collector asked.
func TestRetriesUntilCollectorAccepts(t *testing.T) {
	h := newHome(t)
	const n = 5
	for i := range n {
		h.mustRun("enqueue", "--id", fmt.Sprintf("evt-%d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	addr := freeAddr(t)
	c := &flakyConsumer{LogsSink: new(consumertest.LogsSink), failures: 2, retryDelay: time.Second}
	startReceiver(t, addr, c)
	h.startDaemon("otlp+http://" + addr)
	waitFor(t, 30*time.Second, "the events after the retries", func() bool { return c.LogRecordCount() >= n })
	h.mustRun("stop")

	c.mu.Lock()
	calls, wait := c.calls, c.firstPass.Sub(c.lastFail)
	c.mu.Unlock()
	// Each event is retried on its own jittered backoff, so the retries
	// may come in more than one batch.
	if calls < 3 {
		t.Errorf("collector was called %d times, want two refusals and then deliveries", calls)
	}
	if wait < 900*time.Millisecond {
		t.Errorf("retried %s after a 503 with Retry-After: 1, want at least 1s", wait)
	}
	seen := map[string]int64{}
	for _, r := range records(c.AllLogs()) {
		id, _ := r.lr.Attributes().Get("difflore.event.id")
		attempt, _ := r.lr.Attributes().Get("difflore.attempt")
		if _, dup := seen[id.Str()]; dup {
			t.Errorf("event %s arrived twice", id.Str())
		}
		seen[id.Str()] = attempt.Int()
	}
	for i := range n {
		if a, ok := seen[fmt.Sprintf("evt-%d", i)]; !ok || a != 3 {
			t.Errorf("evt-%d: arrived %v with attempt %d, want attempt 3", i, ok, a)
		}
	}
}

// TestCollectorStartsLate points the daemon at a port where nothing listens
// yet: delivery fails and is retried, and the events arrive once the
// receiver starts.
func TestCollectorStartsLate(t *testing.T) {
	h := newHome(t)
	const n = 3
	for i := range n {
		h.mustRun("enqueue", "--id", fmt.Sprintf("evt-%d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	addr := freeAddr(t)
	h.startDaemon("otlp+http://" + addr)
	waitFor(t, 30*time.Second, "a failed delivery in status", func() bool { return h.status().Delivery.LastError != "" })
	if st := h.status(); st.Outbox.Pending+st.Outbox.Inflight != n {
		t.Fatalf("with no collector: status %+v, want %d events waiting", st, n)
	}
	sink := new(consumertest.LogsSink)
	startReceiver(t, addr, sink)
	waitFor(t, 30*time.Second, "the events at the late collector", func() bool { return sink.LogRecordCount() >= n })
	h.mustRun("stop")
	if got := sink.LogRecordCount(); got != n {
		t.Errorf("collector got %d records, want %d", got, n)
	}
}

// permanentConsumer refuses everything for good; the collector answers 500,
// which OTLP forbids retrying.
type permanentConsumer struct {
	consumertest.LogsSink
}

func (c *permanentConsumer) ConsumeLogs(context.Context, plog.Logs) error {
	return consumererror.NewPermanent(errors.New("exporter refuses this data"))
}

// TestPermanentRefusalDeadLetters checks that events the collector refuses
// for good end as dead letters with the collector's reason, and are not
// sent again and again.
func TestPermanentRefusalDeadLetters(t *testing.T) {
	h := newHome(t)
	const n = 2
	for i := range n {
		h.mustRun("enqueue", "--id", fmt.Sprintf("evt-%d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	addr := freeAddr(t)
	startReceiver(t, addr, &permanentConsumer{})
	h.startDaemon("otlp+http://" + addr)
	waitFor(t, 30*time.Second, "dead letters", func() bool { return h.status().Outbox.Dead == n })
	st := h.status()
	if st.Outbox.Pending+st.Outbox.Inflight != 0 || !strings.Contains(st.Delivery.LastError, "500") ||
		!strings.Contains(st.Delivery.LastError, "exporter refuses this data") {
		t.Errorf("status %+v, want %d dead letters and the collector's 500 as last error", st, n)
	}
}
