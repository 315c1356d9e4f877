package otel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// claudeTurn is a Claude Code turn as its hooks send it: a prompt, a tool
// call whose input holds a secret, and the stop.
var claudeTurn = []struct{ id, kind, payload string }{
	{"t-prompt", "claude.UserPromptSubmit", `{"session_id":"558cdcc9-eca8-448a-8061-64b5629eccb2","prompt_id":"2827e95d-621b-485a-a43b-d9ef9ab488b2","hook_event_name":"UserPromptSubmit","prompt":"say hi"}`},
	{"t-pre", "claude.PreToolUse", `{"session_id":"558cdcc9-eca8-448a-8061-64b5629eccb2","prompt_id":"2827e95d-621b-485a-a43b-d9ef9ab488b2","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789' example.com"},"tool_use_id":"toolu_01"}`},
	{"t-post", "claude.PostToolUseFailure", `{"session_id":"558cdcc9-eca8-448a-8061-64b5629eccb2","prompt_id":"2827e95d-621b-485a-a43b-d9ef9ab488b2","hook_event_name":"PostToolUseFailure","tool_name":"Bash","tool_input":{"command":"curl"},"tool_use_id":"toolu_01","error":"Exit code 6","is_interrupt":false}`},
	{"t-stop", "claude.Stop", `{"session_id":"558cdcc9-eca8-448a-8061-64b5629eccb2","prompt_id":"2827e95d-621b-485a-a43b-d9ef9ab488b2","hook_event_name":"Stop","stop_hook_active":false}`},
}

// TestTracesAtCollector: a Claude turn reaches the Collector's OTLP
// receiver as a turn span with its tool call under it, decoded by the
// Collector's own pdata from difflore's protobuf and from its JSON; the
// log records carry their spans' ids; the tool's arguments are there,
// redacted, with trace_content.
func TestTracesAtCollector(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "http/json"} {
		t.Run(strings.ReplaceAll(protocol, "/", "-"), func(t *testing.T) {
			h := newHome(t)
			if err := os.MkdirAll(h.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			conf := fmt.Sprintf("protocol = %q\ntrace_content = true\n", protocol)
			if err := os.WriteFile(filepath.Join(h.dir, "config.toml"), []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, e := range claudeTurn {
				h.mustRun("enqueue", "--id", e.id, "--kind", e.kind, e.payload)
			}
			addr := freeAddr(t)
			logs := new(consumertest.LogsSink)
			spans := new(consumertest.TracesSink)
			startReceiverTraces(t, addr, logs, spans)
			h.startDaemon("otlp+http://" + addr)
			waitFor(t, 30*time.Second, "the spans at the collector", func() bool { return spans.SpanCount() >= 2 && logs.LogRecordCount() >= len(claudeTurn) })
			h.mustRun("stop")
			checkClaudeTurn(t, spans, logs)
		})
	}
}

// checkClaudeTurn checks what the Collector received of claudeTurn.
func checkClaudeTurn(t *testing.T, spans *consumertest.TracesSink, logs *consumertest.LogsSink) {
	t.Helper()
	all := collectorSpans(t, spans)
	if len(all) != 2 {
		t.Fatalf("%d spans, want 2", len(all))
	}
	tool, turn := all[0], all[1]
	if tool.Name() != "execute_tool Bash" || turn.Name() != "invoke_agent claude" {
		t.Fatalf("spans %q, %q", tool.Name(), turn.Name())
	}
	if tool.ParentSpanID() != turn.SpanID() || tool.TraceID() != turn.TraceID() || !turn.ParentSpanID().IsEmpty() {
		t.Errorf("tool span %s/%s parent %s; turn %s/%s: want the tool under the turn", tool.TraceID(), tool.SpanID(), tool.ParentSpanID(), turn.TraceID(), turn.SpanID())
	}
	if tool.Kind() != ptrace.SpanKindInternal || tool.Status().Code() != ptrace.StatusCodeError || turn.Status().Code() != ptrace.StatusCodeUnset {
		t.Errorf("kinds/status: tool %v %v, turn %v", tool.Kind(), tool.Status().Code(), turn.Status().Code())
	}
	if !(turn.StartTimestamp() < tool.StartTimestamp() && tool.EndTimestamp() <= turn.EndTimestamp()) {
		t.Errorf("tool %v–%v not within turn %v–%v", tool.StartTimestamp(), tool.EndTimestamp(), turn.StartTimestamp(), turn.EndTimestamp())
	}
	want := map[string]any{
		"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "Bash", "gen_ai.tool.call.id": "toolu_01",
		"gen_ai.provider.name": "anthropic", "gen_ai.agent.name": "claude", "error.type": "tool_error",
		"gen_ai.conversation.id": "558cdcc9-eca8-448a-8061-64b5629eccb2", "session.id": "558cdcc9-eca8-448a-8061-64b5629eccb2",
	}
	got := tool.Attributes().AsRaw()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tool attribute %s = %v, want %v", k, got[k], v)
		}
	}
	args, _ := got["gen_ai.tool.call.arguments"].(string)
	if !strings.Contains(args, "curl") || strings.Contains(args, "abcdefghijklmnopqrstuvwxyz0123456789") || !strings.Contains(args, "[REDACTED:") {
		t.Errorf("arguments %q: want them, with the bearer token redacted", args)
	}
	if p := turn.Attributes().AsRaw()["prompt.id"]; p != "2827e95d-621b-485a-a43b-d9ef9ab488b2" {
		t.Errorf("turn prompt.id = %v", p)
	}
	wantSpan := map[string]pcommon.SpanID{"t-prompt": turn.SpanID(), "t-pre": tool.SpanID(), "t-post": tool.SpanID(), "t-stop": turn.SpanID()}
	for _, r := range records(logs.AllLogs()) {
		id, _ := r.lr.Attributes().Get("difflore.event.id")
		if r.lr.SpanID() != wantSpan[id.Str()] || r.lr.TraceID() != turn.TraceID() {
			t.Errorf("record %s: trace %s span %s, want %s %s", id.Str(), r.lr.TraceID(), r.lr.SpanID(), turn.TraceID(), wantSpan[id.Str()])
		}
	}
}

// collectorSpans flattens what a sink received, checking the resource.
func collectorSpans(t *testing.T, spans *consumertest.TracesSink) []ptrace.Span {
	t.Helper()
	var all []ptrace.Span
	for _, td := range spans.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != "difflore" {
				t.Errorf("resource service.name %q", v.Str())
			}
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					all = append(all, s)
				}
			}
		}
	}
	return all
}

// TestTracesTwoSinksAtCollector: two Collector receivers, the top-level
// sink in protobuf with traces alone and a [[sink]] table in JSON with
// logs and traces, each decoded by the Collector's pdata: each receives
// the turn's two spans with the same ids, and only the second the log
// records.
func TestTracesTwoSinksAtCollector(t *testing.T) {
	h := newHome(t)
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pbAddr, jsAddr := freeAddr(t), freeAddr(t)
	pbLogs, pbSpans := new(consumertest.LogsSink), new(consumertest.TracesSink)
	jsLogs, jsSpans := new(consumertest.LogsSink), new(consumertest.TracesSink)
	startReceiverTraces(t, pbAddr, pbLogs, pbSpans)
	startReceiverTraces(t, jsAddr, jsLogs, jsSpans)
	conf := fmt.Sprintf("signals = [\"traces\"]\ntrace_content = true\n\n[[sink]]\nname = \"json\"\nendpoint = \"otlp+http://%s\"\nprotocol = \"http/json\"\nsignals = [\"logs\", \"traces\"]\n", jsAddr)
	if err := os.WriteFile(filepath.Join(h.dir, "config.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range claudeTurn {
		h.mustRun("enqueue", "--id", e.id, "--kind", e.kind, e.payload)
	}
	h.startDaemon("otlp+http://" + pbAddr)
	waitFor(t, 30*time.Second, "the spans at both collectors", func() bool {
		return pbSpans.SpanCount() >= 2 && jsSpans.SpanCount() >= 2 && jsLogs.LogRecordCount() >= len(claudeTurn)
	})
	h.mustRun("stop")
	checkClaudeTurn(t, jsSpans, jsLogs)
	pb, js := collectorSpans(t, pbSpans), collectorSpans(t, jsSpans)
	if len(pb) != 2 || len(js) != 2 {
		t.Fatalf("%d and %d spans, want 2 each", len(pb), len(js))
	}
	for i := range pb {
		if pb[i].Name() != js[i].Name() || pb[i].TraceID() != js[i].TraceID() || pb[i].SpanID() != js[i].SpanID() ||
			pb[i].ParentSpanID() != js[i].ParentSpanID() || pb[i].StartTimestamp() != js[i].StartTimestamp() {
			t.Errorf("span %d: %s %s/%s at the protobuf sink, %s %s/%s at the JSON one", i,
				pb[i].Name(), pb[i].TraceID(), pb[i].SpanID(), js[i].Name(), js[i].TraceID(), js[i].SpanID())
		}
	}
	if n := pbLogs.LogRecordCount(); n != 0 {
		t.Errorf("the traces-only sink received %d log records", n)
	}
}
