package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update-spans", false, "rewrite testdata/spans/*.golden from what the builder makes")

// hookStep is one hook of a recorded sequence: a fixture from
// testdata/hooks with fields set or added, at a time from the start.
type hookStep struct {
	kind    string         // agent.Event
	fixture string         // testdata/hooks file, without .json
	set     map[string]any // fields to set (nil values delete)
	at      time.Duration
	tp      string // TRACEPARENT
}

var spanEpoch = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// hookEvents turns steps into events as the outbox would hand them over.
func hookEvents(t *testing.T, steps []hookStep) []event {
	t.Helper()
	events := make([]event, len(steps))
	for i, s := range steps {
		raw, err := os.ReadFile(filepath.Join("testdata", "hooks", s.fixture+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", s.fixture, err)
		}
		for k, v := range s.set {
			if v == nil {
				delete(doc, k)
			} else {
				doc[k] = v
			}
		}
		payload, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		events[i] = event{Seq: int64(i + 1), ID: fmt.Sprintf("ev-%02d", i+1), Kind: s.kind, Payload: payload,
			CreatedAt: spanEpoch.Add(s.at), Attempt: 1, Traceparent: s.tp}
	}
	return events
}

const claudePrompt2 = "9d0c5f1e-2222-4a3b-8c7d-000000000002"
const claudePrompt3 = "9d0c5f1e-3333-4a3b-8c7d-000000000003"

// claudeSession is a Claude Code session: two parallel tool calls whose
// ends come in the other order, one of them failed; a subagent with a tool
// call of its own; a second turn with a tool call that never ends, cut off
// by a third prompt (an interrupt fires no Stop); the session's end while
// the third turn is open.
func claudeSession() []hookStep {
	p1 := "2827e95d-621b-485a-a43b-d9ef9ab488b2"
	ms := time.Millisecond
	return []hookStep{
		{kind: "claude.SessionStart", fixture: "claude-2.1.328.SessionStart", at: 0},
		{kind: "claude.UserPromptSubmit", fixture: "claude-2.1.328.UserPromptSubmit", at: 100 * ms},
		{kind: "claude.PreToolUse", fixture: "claude-docs.PreToolUse", at: 900 * ms,
			set: map[string]any{"prompt_id": p1, "tool_name": "Read", "tool_use_id": "toolu_A", "tool_input": map[string]any{"file_path": "a.go"}}},
		{kind: "claude.PreToolUse", fixture: "claude-docs.PreToolUse", at: 910 * ms,
			set: map[string]any{"prompt_id": p1, "tool_name": "Bash", "tool_use_id": "toolu_B", "tool_input": map[string]any{"command": "false"}}},
		{kind: "claude.PostToolUse", fixture: "claude-docs.PostToolUse", at: 1200 * ms,
			set: map[string]any{"prompt_id": p1, "tool_name": "Read", "tool_use_id": "toolu_A"}},
		{kind: "claude.PostToolUseFailure", fixture: "claude-docs.PostToolUseFailure", at: 1500 * ms,
			set: map[string]any{"prompt_id": p1, "tool_use_id": "toolu_B"}},
		{kind: "claude.SubagentStart", fixture: "claude-docs.SubagentStart", at: 2000 * ms, set: map[string]any{"prompt_id": p1}},
		{kind: "claude.PreToolUse", fixture: "claude-docs.PreToolUse", at: 2100 * ms,
			set: map[string]any{"prompt_id": p1, "agent_id": "agent-7f3a", "agent_type": "Explore", "tool_name": "Grep", "tool_use_id": "toolu_C"}},
		{kind: "claude.PostToolUse", fixture: "claude-docs.PostToolUse", at: 2300 * ms,
			set: map[string]any{"prompt_id": p1, "agent_id": "agent-7f3a", "agent_type": "Explore", "tool_name": "Grep", "tool_use_id": "toolu_C"}},
		{kind: "claude.SubagentStop", fixture: "claude-docs.SubagentStart", at: 2500 * ms,
			set: map[string]any{"prompt_id": p1, "hook_event_name": "SubagentStop"}},
		{kind: "claude.Stop", fixture: "claude-docs.Stop", at: 3000 * ms, set: map[string]any{"prompt_id": p1}},
		{kind: "claude.UserPromptSubmit", fixture: "claude-2.1.328.UserPromptSubmit", at: 10 * time.Second, set: map[string]any{"prompt_id": claudePrompt2}},
		{kind: "claude.PreToolUse", fixture: "claude-docs.PreToolUse", at: 11 * time.Second,
			set: map[string]any{"prompt_id": claudePrompt2, "tool_name": "Bash", "tool_use_id": "toolu_D"}},
		{kind: "claude.Notification", fixture: "claude-docs.Notification", at: 12 * time.Second, set: map[string]any{"prompt_id": claudePrompt2}},
		{kind: "claude.UserPromptSubmit", fixture: "claude-2.1.328.UserPromptSubmit", at: 20 * time.Second, set: map[string]any{"prompt_id": claudePrompt3}},
		{kind: "claude.SessionEnd", fixture: "claude-2.1.328.SessionEnd", at: 30 * time.Second, set: map[string]any{"prompt_id": claudePrompt3}},
	}
}

// codexSession is Codex 0.169.0's turn with one tool call, as it sends
// them: turn_id on every hook, tool_use_id on the tool's.
func codexSession() []hookStep {
	return []hookStep{
		{kind: "codex.SessionStart", fixture: "codex-0.169.0.SessionStart", set: map[string]any{"session_id": "01a21528-c757-7871-a7c9-1fc9789b705a"}},
		{kind: "codex.UserPromptSubmit", fixture: "codex-0.169.0.UserPromptSubmit", at: time.Second,
			set: map[string]any{"session_id": "01a21528-c757-7871-a7c9-1fc9789b705a", "turn_id": "01a21528-c78c-7393-b86b-54307d282b7e"}},
		{kind: "codex.PreToolUse", fixture: "codex-0.169.0.PreToolUse", at: 2 * time.Second},
		{kind: "codex.PostToolUse", fixture: "codex-0.169.0.PostToolUse", at: 3 * time.Second},
		{kind: "codex.Stop", fixture: "codex-0.169.0.Stop", at: 4 * time.Second},
		{kind: "codex.SessionEnd", fixture: "codex-0.169.0.SessionEnd", at: 5 * time.Second},
	}
}

// geminiSession has no tool call ids: two calls of the same tool are
// paired with their ends by order, and a failed one says so in its
// tool_response.
func geminiSession() []hookStep {
	s := "40af8c33-bc88-4dbc-b547-e3d688d75667"
	return []hookStep{
		{kind: "gemini.SessionStart", fixture: "gemini-0.61.0.SessionStart", set: map[string]any{"session_id": s}},
		{kind: "gemini.BeforeAgent", fixture: "gemini-0.61.0.BeforeAgent", at: time.Second, set: map[string]any{"session_id": s}},
		{kind: "gemini.BeforeTool", fixture: "gemini-0.61.0.BeforeTool", at: 2 * time.Second},
		{kind: "gemini.BeforeTool", fixture: "gemini-0.61.0.BeforeTool", at: 2100 * time.Millisecond},
		{kind: "gemini.AfterTool", fixture: "gemini-0.61.0.AfterTool", at: 2500 * time.Millisecond},
		{kind: "gemini.AfterTool", fixture: "gemini-0.61.0.AfterTool", at: 2700 * time.Millisecond,
			set: map[string]any{"tool_response": map[string]any{"llmContent": "", "error": map[string]any{"message": "EACCES", "type": "file_write_failure"}}}},
		{kind: "gemini.AfterAgent", fixture: "gemini-0.61.0.AfterAgent", at: 3 * time.Second},
		{kind: "gemini.SessionEnd", fixture: "gemini-0.61.0.SessionEnd", at: 4 * time.Second, set: map[string]any{"session_id": s}},
	}
}

// cursorSession: Cursor has no preToolUse hook wired (it answers with a
// permission), so a tool call is one postToolUse whose duration gives its
// start; a failed one has no duration and becomes an end without a start.
func cursorSession() []hookStep {
	return []hookStep{
		{kind: "cursor.sessionStart", fixture: "cursor-docs.sessionStart"},
		{kind: "cursor.beforeSubmitPrompt", fixture: "cursor-docs.beforeSubmitPrompt", at: time.Second},
		{kind: "cursor.postToolUse", fixture: "cursor-docs.postToolUse", at: 4 * time.Second},
		{kind: "cursor.postToolUseFailure", fixture: "cursor-docs.postToolUse", at: 5 * time.Second,
			set: map[string]any{"hook_event_name": "postToolUseFailure", "tool_use_id": "tool_2", "duration": nil, "error_message": "exit 1"}},
		{kind: "cursor.stop", fixture: "cursor-docs.stop", at: 6 * time.Second},
		{kind: "cursor.sessionEnd", fixture: "cursor-docs.sessionEnd", at: 7 * time.Second},
	}
}

var spanSessions = map[string]func() []hookStep{
	"claude": claudeSession, "codex": codexSession, "gemini": geminiSession, "cursor": cursorSession,
}

// renderSpans is the golden text of spans: one JSON object per line.
func renderSpans(t *testing.T, spans []traceSpan) []byte {
	var b bytes.Buffer
	for _, s := range spans {
		line, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// buildAll builds events in batches of size n, committing each.
func buildAll(events []event, n int, content bool) (*spanBuilder, []traceSpan) {
	b := newSpanBuilder(content)
	var spans []traceSpan
	for i := 0; i < len(events); i += n {
		out := b.build(events[i:min(i+n, len(events))], spanEpoch)
		spans = append(spans, out.spans...)
		b.st.commit()
	}
	return b, spans
}

// TestSpansGolden: each agent's recorded session makes exactly the spans
// in testdata/spans/AGENT.golden (names, ids, parents, times, attributes),
// whether its events come in one batch or one at a time.
func TestSpansGolden(t *testing.T) {
	for agent, session := range spanSessions {
		t.Run(agent, func(t *testing.T) {
			events := hookEvents(t, session())
			_, spans := buildAll(events, len(events), agent == "claude")
			got := renderSpans(t, spans)
			path := filepath.Join("testdata", "spans", agent+".golden")
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-spans to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("spans differ from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
			}
			_, one := buildAll(events, 1, agent == "claude")
			if g := renderSpans(t, one); !bytes.Equal(g, got) {
				t.Errorf("one event per batch makes other spans:\n%s\nthan one batch:\n%s", g, got)
			}
			checkSpanTree(t, spans)
		})
	}
}

// checkSpanTree checks what every trace must hold: each span once, each
// parent sent, a child within its trace.
func checkSpanTree(t *testing.T, spans []traceSpan) {
	t.Helper()
	byID := map[string]traceSpan{}
	for _, s := range spans {
		if _, dup := byID[s.SpanID]; dup {
			t.Errorf("span %s (%s) sent twice", s.SpanID, s.Name)
		}
		byID[s.SpanID] = s
		if s.End < s.Start {
			t.Errorf("span %s ends before it starts", s.Name)
		}
	}
	for _, s := range spans {
		if s.Parent == "" {
			continue
		}
		p, ok := byID[s.Parent]
		if !ok {
			t.Errorf("span %s (%s) has parent %s, never sent", s.Name, s.SpanID, s.Parent)
			continue
		}
		if p.TraceID != s.TraceID {
			t.Errorf("span %s is in trace %s, its parent in %s", s.Name, s.TraceID, p.TraceID)
		}
	}
}

func attrOf(s traceSpan, key string) string {
	for _, a := range s.Attrs {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// TestSpansClaudeShape checks the Claude session's spans by what they
// mean, beside the golden file: which span is under which, and why the
// unfinished ones are.
func TestSpansClaudeShape(t *testing.T) {
	_, spans := buildAll(hookEvents(t, claudeSession()), 100, false)
	byName := map[string][]traceSpan{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	turns := byName["invoke_agent claude"]
	if len(turns) != 3 {
		t.Fatalf("%d turns, want 3: %+v", len(turns), spans)
	}
	if turns[0].Error != "" || attrOf(turns[0], unfinishedAttr) != "" {
		t.Errorf("first turn = %+v, want a plain success", turns[0])
	}
	if got := attrOf(turns[1], unfinishedAttr); got != "cut_off" {
		t.Errorf("second turn unfinished = %q, want cut_off", got)
	}
	if got := attrOf(turns[2], unfinishedAttr); got != "session_end" {
		t.Errorf("third turn unfinished = %q, want session_end", got)
	}
	if turns[0].TraceID == turns[1].TraceID {
		t.Error("two turns share a trace")
	}
	if got := attrOf(turns[0], "prompt.id"); got != "2827e95d-621b-485a-a43b-d9ef9ab488b2" {
		t.Errorf("prompt.id = %q", got)
	}
	bash := byName["execute_tool Bash"]
	if len(bash) != 2 || bash[0].Error != "tool_error" || attrOf(bash[0], "error.type") != "tool_error" || bash[0].Parent != turns[0].SpanID {
		t.Errorf("failed Bash = %+v", bash)
	}
	if len(bash) == 2 && (attrOf(bash[1], unfinishedAttr) != "cut_off" || bash[1].Parent != turns[1].SpanID || bash[1].End != turns[1].End) {
		t.Errorf("unpaired Bash = %+v, want cut off with its turn", bash[1])
	}
	sub := byName["invoke_agent Explore"]
	grep := byName["execute_tool Grep"]
	if len(sub) != 1 || sub[0].Parent != turns[0].SpanID || len(grep) != 1 || grep[0].Parent != sub[0].SpanID {
		t.Errorf("subagent %+v and its tool %+v: want the tool under the subagent under the turn", sub, grep)
	}
	if read := byName["execute_tool Read"]; len(read) != 1 || read[0].End-read[0].Start != int64(300*time.Millisecond) {
		t.Errorf("Read = %+v, want 300ms", read)
	}
	for _, s := range spans {
		if attrOf(s, "gen_ai.tool.call.arguments") != "" {
			t.Errorf("%s carries its arguments without trace_content", s.Name)
		}
	}
}

// TestSpansReplay: a batch sent again after it was delivered (the daemon
// died before settling it) sends nothing again, and an end whose start
// comes later (its batch was retried) still meets it.
func TestSpansReplay(t *testing.T) {
	events := hookEvents(t, codexSession())
	b, spans := buildAll(events, len(events), false)
	if again := b.build(events, spanEpoch); len(again.spans) != 0 {
		t.Errorf("a batch delivered twice sent %d spans again", len(again.spans))
	}
	// The tool's end, then the rest with its start.
	late := newSpanBuilder(false)
	first := late.build([]event{events[0], events[1], events[3]}, spanEpoch)
	late.st.commit()
	rest := late.build([]event{events[2], events[4], events[5]}, spanEpoch)
	got := renderSpans(t, append(first.spans, rest.spans...))
	if want := renderSpans(t, spans); !bytes.Equal(sortedLines(got), sortedLines(want)) {
		t.Errorf("end before start made:\n%s\nwant:\n%s", got, want)
	}
}

func sortedLines(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(lines)
	return []byte(strings.Join(lines, "\n"))
}

// TestSpansRollback: a batch that was not delivered leaves nothing behind;
// built again, it makes the same spans.
func TestSpansRollback(t *testing.T) {
	events := hookEvents(t, claudeSession())
	b := newSpanBuilder(false)
	first := b.build(events, spanEpoch)
	b.st.rollback()
	if len(b.st.entries) != 0 || len(b.st.byEvent) != 0 || len(b.st.turn) != 0 {
		t.Fatalf("rollback left %d entries, %d events, %d turns", len(b.st.entries), len(b.st.byEvent), len(b.st.turn))
	}
	b.lastSweep = time.Time{}
	second := b.build(events, spanEpoch)
	if g, w := renderSpans(t, second.spans), renderSpans(t, first.spans); !bytes.Equal(g, w) {
		t.Errorf("built again after a rollback:\n%s\nwant:\n%s", g, w)
	}
}

// TestSpansTimeout: a start whose end never comes is sent, unfinished,
// once the events have moved spanBound past it; the bound counts on the
// events' clock.
func TestSpansTimeout(t *testing.T) {
	steps := claudeSession()[:4] // a turn with two tool calls open
	events := hookEvents(t, steps)
	b := newSpanBuilder(false)
	if out := b.build(events, spanEpoch); len(out.spans) != 0 {
		t.Fatalf("sent %d spans before any end", len(out.spans))
	}
	b.st.commit()
	later := hookEvents(t, []hookStep{{kind: "claude.Notification", fixture: "claude-docs.Notification", at: spanBound + time.Hour,
		set: map[string]any{"session_id": "another"}}})
	later[0].Seq, later[0].ID = 100, "ev-later"
	out := b.build(later, spanEpoch.Add(time.Hour))
	if len(out.spans) != 3 {
		t.Fatalf("after the bound sent %d spans, want the turn and its 2 tools", len(out.spans))
	}
	for _, s := range out.spans {
		if attrOf(s, unfinishedAttr) == "" {
			t.Errorf("%s not marked unfinished: %+v", s.Name, s)
		}
	}
}

// TestSpansTraceparent: a turn whose hook had TRACEPARENT is a child of
// that span, in its trace, and so is what runs under it.
func TestSpansTraceparent(t *testing.T) {
	steps := codexSession()
	for i := range steps {
		steps[i].tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	}
	_, spans := buildAll(hookEvents(t, steps), 100, false)
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans {
		if s.TraceID != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("%s in trace %s", s.Name, s.TraceID)
		}
	}
	turn := spans[1]
	if turn.Parent != "b7ad6b7169203331" {
		t.Errorf("turn's parent = %q", turn.Parent)
	}
	for _, bad := range []string{"", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "xx"} {
		if _, ok := parseTraceparent(bad); ok {
			t.Errorf("parseTraceparent(%q) accepted", bad)
		}
	}
}
