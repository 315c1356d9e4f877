package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Spans from hook pairs. The daemon turns the hooks of a turn, a tool call
// and a subagent into OpenTelemetry spans in the GenAI semantic
// conventions: a start hook opens a span, its end hook closes it, and a
// closed span is sent. The hook path does nothing for it: all of this runs
// in the OTLP sink, on the events of a batch.
//
// Ids are hashes of the agent's own ids (its session, prompt or turn, tool
// call and subagent ids; where it has none, difflore's id of the start
// event), so the same hooks always make the same spans, whichever daemon
// builds them and however often. What is open between batches is kept in
// the outbox (spanstore.go), so that a start and an end delivered hours
// apart, with a daemon restart between, still meet.

// spanBound is how long a start may wait for its end: an open span older
// than this (on the clock of the events: the newest one seen) is closed and sent, marked unfinished (unfinishedAttr =
// "timeout"), with its end at its start, since when it really ended is not
// known. It is also how long a closed span is remembered, so that a batch
// sent again after a crash is recognised and its spans are not sent twice.
const spanBound = 24 * time.Hour

// unfinishedAttr marks a span that difflore closed because its end hook
// never came; the value says why: "cut_off" (a new prompt in the same
// session, or the end of its parent), "session_end", "timeout" (spanBound),
// "no_start" (an end whose start never came: its start is its end).
const unfinishedAttr = "difflore.span.unfinished"

// hookRole is what a hook event means for spans.
type hookRole int

const (
	roleOther hookRole = iota
	roleTurnStart
	roleTurnEnd
	roleTurnFail
	roleToolStart
	roleToolEnd
	roleToolFail
	roleSubStart
	roleSubEnd
	roleSessionEnd
)

// hookRoles maps the event half of a kind ("claude.PreToolUse") to its
// role. The names are the agents' own: Claude Code, Codex, Qwen Code and
// Droid share Claude's; Gemini CLI has BeforeAgent/AfterAgent and
// BeforeTool/AfterTool; Cursor, Copilot CLI and Kiro use lowerCamelCase.
var hookRoles = map[string]hookRole{
	"UserPromptSubmit": roleTurnStart, "BeforeAgent": roleTurnStart,
	"beforeSubmitPrompt": roleTurnStart, "userPromptSubmitted": roleTurnStart, "promptSubmit": roleTurnStart,
	"Stop": roleTurnEnd, "AfterAgent": roleTurnEnd, "stop": roleTurnEnd, "agentStop": roleTurnEnd,
	"StopFailure": roleTurnFail,
	"PreToolUse":  roleToolStart, "BeforeTool": roleToolStart, "preToolUse": roleToolStart,
	"PostToolUse": roleToolEnd, "AfterTool": roleToolEnd, "postToolUse": roleToolEnd,
	"PostToolUseFailure": roleToolFail, "postToolUseFailure": roleToolFail,
	"SubagentStart": roleSubStart, "subagentStart": roleSubStart,
	"SubagentStop": roleSubEnd, "subagentStop": roleSubEnd,
	"SessionEnd": roleSessionEnd, "sessionEnd": roleSessionEnd,
}

// agentProviders is gen_ai.provider.name for each agent, by the name its
// kinds start with: the conventions' well-known values where there is one.
var agentProviders = map[string]string{
	"claude": "anthropic", "codex": "openai", "gemini": "gcp.gemini", "cursor": "cursor",
	"qwen": "qwen", "copilot": "github_copilot", "droid": "factory", "cline": "cline",
}

// hookFields are the payload fields spans are built from. Each agent names
// some of them; the others stay empty.
type hookFields struct {
	SessionID      string          `json:"session_id"`
	ConversationID string          `json:"conversation_id"`
	SessionIDCamel string          `json:"sessionId"`
	PromptID       string          `json:"prompt_id"`
	TurnID         string          `json:"turn_id"`
	GenerationID   string          `json:"generation_id"`
	ToolName       string          `json:"tool_name"`
	ToolNameCamel  string          `json:"toolName"`
	ToolUseID      string          `json:"tool_use_id"`
	ToolCallID     string          `json:"tool_call_id"`
	ToolInput      json.RawMessage `json:"tool_input"`
	ToolArgs       json.RawMessage `json:"toolArgs"`
	ToolResponse   json.RawMessage `json:"tool_response"`
	ToolOutput     json.RawMessage `json:"tool_output"`
	Error          json.RawMessage `json:"error"`
	IsInterrupt    bool            `json:"is_interrupt"`
	AgentID        string          `json:"agent_id"`
	AgentType      string          `json:"agent_type"`
	Model          string          `json:"model"`
	Status         string          `json:"status"`
	Duration       *float64        `json:"duration"`
}

func (f *hookFields) session() string {
	return cmpOr(f.SessionID, f.ConversationID, f.SessionIDCamel)
}

func (f *hookFields) turnKey() string { return cmpOr(f.PromptID, f.TurnID, f.GenerationID) }

func (f *hookFields) callKey() string { return cmpOr(f.ToolUseID, f.ToolCallID) }

func (f *hookFields) toolName() string { return cmpOr(f.ToolName, f.ToolNameCamel, "tool") }

func cmpOr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// spanAttr is one attribute: a string, or a bool when isBool.
type spanAttr struct {
	Key    string `json:"k"`
	Value  string `json:"v,omitempty"`
	IsBool bool   `json:"b,omitempty"`
}

// traceSpan is a span as sent. Ids are hex, as OTLP/JSON writes them;
// times are Unix nanoseconds.
type traceSpan struct {
	TraceID string     `json:"trace"`
	SpanID  string     `json:"span"`
	Parent  string     `json:"parent,omitempty"`
	Name    string     `json:"name"`
	Start   int64      `json:"start"`
	End     int64      `json:"end,omitempty"`
	Attrs   []spanAttr `json:"attrs"`
	Error   string     `json:"error,omitempty"` // status message; set means status ERROR
}

func (s *traceSpan) attr(key, value string) {
	if value != "" {
		s.Attrs = append(s.Attrs, spanAttr{Key: key, Value: value})
	}
}

// Span kinds of an entry.
const (
	entryTurn = iota
	entryTool
	entrySub
)

// Entry states: open (a start waits for its end), closed (sent; kept
// until spanBound so a resent batch is recognised), endOnly (an end whose
// start has not come yet).
const (
	entryOpen = iota
	entryClosed
	entryEndOnly
)

// spanEntry is what the builder remembers of a span between batches.
type spanEntry struct {
	Span    traceSpan `json:"s"`
	Kind    int       `json:"kind"`
	State   int       `json:"state"`
	Session string    `json:"session"` // agent, NUL, the agent's session id
	// Match is how an end finds this start: the tool call id, the
	// subagent id, or empty when the agent gives none and ends are
	// paired with starts by order (Seq) and Tool.
	Match      string `json:"match,omitempty"`
	Tool       string `json:"tool,omitempty"`
	Seq        int64  `json:"seq"`
	StartEvent string `json:"se,omitempty"`
	EndEvent   string `json:"ee,omitempty"`
}

// spanLink is the span an event belongs to, for its log record.
type spanLink struct{ trace, span string }

// spanState is what the builder knows: every entry by span id, and the
// indexes that find them. A batch's changes are undone if the batch is
// not delivered (rollback), kept if it is (dirty, for the store).
type spanState struct {
	entries map[string]*spanEntry
	open    map[string]*spanEntry // the entries not closed: what a scan for open spans reads
	byEvent map[string]string     // event id → the span it started or ended
	turn    map[string]string     // session → its open turn

	undo  []undoStep
	dirty map[string]bool // span ids changed since the last commit
}

// undoStep is how to undo one change (put, setIndex, remove): a record,
// not a closure, so that the log is reused from batch to batch instead of
// allocating a closure and a copy of the entry for every change.
type undoStep struct {
	id string
	// An entry's change (m == nil): the entry there was (entry, with
	// its fields before the change in prev when it was changed in
	// place), whether it was dirty, and the open entry there was.
	entry    *spanEntry
	inPlace  bool
	prev     spanEntry
	wasDirty bool
	wasOpen  *spanEntry
	removal  bool
	// An index's change: m[id] was old, or absent when !had.
	m   map[string]string
	old string
	had bool
}

func (st *spanState) undoOne(u *undoStep) {
	switch {
	case u.m != nil:
		if u.had {
			u.m[u.id] = u.old
		} else {
			delete(u.m, u.id)
		}
		return
	case u.removal:
		st.entries[u.id] = u.entry
	default:
		if u.entry != nil {
			if u.inPlace {
				*u.entry = u.prev
			}
			st.entries[u.id] = u.entry
		} else {
			delete(st.entries, u.id)
		}
		if u.wasOpen != nil {
			st.open[u.id] = u.wasOpen
		} else {
			delete(st.open, u.id)
		}
	}
	if !u.wasDirty {
		delete(st.dirty, u.id)
	}
}

func newSpanState() *spanState {
	return &spanState{entries: map[string]*spanEntry{}, open: map[string]*spanEntry{}, byEvent: map[string]string{}, turn: map[string]string{}, dirty: map[string]bool{}}
}

// add indexes an entry loaded from the store.
func (st *spanState) add(e *spanEntry) {
	st.entries[e.Span.SpanID] = e
	if e.State != entryClosed {
		st.open[e.Span.SpanID] = e
	}
	if e.StartEvent != "" {
		st.byEvent[e.StartEvent] = e.Span.SpanID
	}
	if _, ok := st.byEvent[e.EndEvent]; e.EndEvent != "" && !ok {
		st.byEvent[e.EndEvent] = e.Span.SpanID
	}
	if e.Kind == entryTurn && e.State == entryOpen {
		st.turn[e.Session] = e.Span.SpanID
	}
}

// put stores e (new or changed), remembering how to undo it.
func (st *spanState) put(e *spanEntry) {
	id := e.Span.SpanID
	old := st.entries[id]
	st.undo = append(st.undo, undoStep{id: id, entry: old, wasDirty: st.dirty[id], wasOpen: st.open[id]})
	if old != nil && old != e {
		u := &st.undo[len(st.undo)-1]
		u.inPlace, u.prev = true, *old
		*old = *e
		e = old
	}
	st.entries[id] = e
	if e.State != entryClosed {
		st.open[id] = e
	} else {
		delete(st.open, id)
	}
	st.dirty[id] = true
}

// setIndex sets m[k] = v (or deletes it when v is empty), with its undo.
func (st *spanState) setIndex(m map[string]string, k, v string) {
	old, had := m[k]
	st.undo = append(st.undo, undoStep{id: k, m: m, old: old, had: had})
	if v == "" {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// rollback forgets the changes since the last commit.
func (st *spanState) rollback() {
	for i := len(st.undo) - 1; i >= 0; i-- {
		st.undoOne(&st.undo[i])
	}
	st.undo = st.undo[:0]
}

// commit keeps the changes and returns the entries to store; removed are
// the ids of entries dropped (pruned).
func (st *spanState) commit() (changed []*spanEntry, removed []string) {
	for id := range st.dirty {
		if e, ok := st.entries[id]; ok {
			changed = append(changed, e)
		} else {
			removed = append(removed, id)
		}
	}
	slices.SortFunc(changed, func(a, b *spanEntry) int { return strings.Compare(a.Span.SpanID, b.Span.SpanID) })
	slices.Sort(removed)
	clear(st.dirty)
	st.undo = st.undo[:0]
	return changed, removed
}

// spanBuilder turns batches of hook events into spans.
type spanBuilder struct {
	st      *spanState
	content bool // trace_content: tool arguments and results in spans
	// lastSweep is when open spans were last checked against spanBound
	// (wall clock: the check costs a pass over the entries, so it runs
	// at most once a minute).
	lastSweep time.Time
	// newest is the time of the newest event seen. The bound is counted
	// on the events' clock, not the wall clock: a backlog delivered a
	// day late still pairs its starts and ends.
	newest int64
}

func newSpanBuilder(content bool) *spanBuilder {
	return &spanBuilder{st: newSpanState(), content: content}
}

// spanBatch is what one batch of events made: the spans closed by it, in
// the order they closed, and each event's span for its log record.
type spanBatch struct {
	spans []traceSpan
	links map[string]spanLink // by event id
	// swept is the limit of the sweep this batch ran (Unix ns; 0 when it
	// ran none): once the batch is delivered, the closed spans the store
	// keeps from before it can go (spanStore.prune).
	swept int64
}

// build processes events in the order they were enqueued. Its changes to
// the state stay pending until commit or rollback. now is the wall clock,
// for spanBound.
func (b *spanBuilder) build(events []event, now time.Time) *spanBatch {
	out := &spanBatch{links: make(map[string]spanLink, len(events))}
	sorted := events
	if !slices.IsSortedFunc(events, func(a, b event) int { return cmpInt64(a.Seq, b.Seq) }) {
		sorted = slices.Clone(events)
		slices.SortStableFunc(sorted, func(a, b event) int { return cmpInt64(a.Seq, b.Seq) })
	}
	for i := range sorted {
		b.apply(out, &sorted[i])
	}
	for i := range sorted {
		b.newest = max(b.newest, sorted[i].CreatedAt.UnixNano())
	}
	if now.Sub(b.lastSweep) >= time.Minute {
		b.lastSweep = now
		out.swept = b.newest - int64(spanBound)
		b.sweep(out, out.swept)
	}
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hookContext is one event as the builder reads it.
type hookContext struct {
	e       *event
	f       hookFields
	agent   string
	role    hookRole
	session string // agent NUL session id
	at      int64  // Unix nanoseconds
}

func parseHook(e *event) (hookContext, bool) {
	agent, name, ok := strings.Cut(e.Kind, ".")
	if !ok {
		return hookContext{}, false
	}
	c := hookContext{e: e, agent: agent, role: hookRoles[name], at: e.CreatedAt.UnixNano()}
	if f, ok := scanHookFields(e.Payload); ok {
		c.f = f
	} else if json.Unmarshal(e.Payload, &c.f) != nil {
		return hookContext{}, false
	}
	sid := c.f.session()
	if sid == "" {
		return hookContext{}, false
	}
	c.session = agent + "\x00" + sid
	return c, true
}

// apply processes one event. An event already applied (the batch was
// delivered, and then sent again because the daemon died before it could
// settle it) changes nothing and sends nothing again: its spans were
// delivered with it the first time.
func (b *spanBuilder) apply(out *spanBatch, e *event) {
	c, ok := parseHook(e)
	if !ok {
		return
	}
	st := b.st
	if id, done := st.byEvent[e.ID]; done {
		if en := st.entries[id]; en != nil {
			out.links[e.ID] = spanLink{en.Span.TraceID, id}
		}
		return
	}
	var link *spanEntry
	switch c.role {
	case roleTurnStart:
		link = b.turnStart(out, &c)
	case roleTurnEnd, roleTurnFail:
		link = b.turnEnd(out, &c)
	case roleToolStart, roleSubStart:
		link = b.childStart(out, &c)
	case roleToolEnd, roleToolFail, roleSubEnd:
		link = b.childEnd(out, &c)
	case roleSessionEnd:
		b.closeSession(out, c.session, c.at, "session_end", e.ID)
	}
	if link == nil {
		link = b.linkOf(&c)
	}
	if link != nil {
		out.links[e.ID] = spanLink{link.Span.TraceID, link.Span.SpanID}
	}
}

// linkOf is the span an event other than a start or end belongs to: the
// open tool call it names, else the session's open turn.
func (b *spanBuilder) linkOf(c *hookContext) *spanEntry {
	if k := c.f.callKey(); k != "" {
		if en := b.st.entries[spanID("tool", c.session, k)]; en != nil {
			return en
		}
	}
	if id := b.st.turn[c.session]; id != "" {
		return b.st.entries[id]
	}
	return nil
}

// spanID and traceID hash their parts into an id. An all-zero id is
// invalid in OTLP; a hash that is one (it never is in practice) gets a 1.
func spanID(parts ...string) string  { return hashID(8, parts) }
func traceID(parts ...string) string { return hashID(16, parts) }

func hashID(n int, parts []string) string {
	// One buffer and sha256.Sum256 rather than a hash.Hash: ids are
	// hashed several times per event, and the digest's allocations showed.
	var buf [128]byte
	in := append(buf[:0], "difflore.span"...)
	for _, p := range parts {
		in = append(in, 0)
		in = append(in, p...)
	}
	full := sha256.Sum256(in)
	sum := full[:n]
	if bytes.Count(sum, []byte{0}) == n {
		sum[n-1] = 1
	}
	return hex.EncodeToString(sum)
}

// baseSpan is a span with the attributes every span carries.
func baseSpan(c *hookContext, trace, id, parent, name, operation, agentName string) traceSpan {
	sid := strings.SplitN(c.session, "\x00", 2)[1]
	// Room for the attributes a span of any kind may get, its end's too.
	s := traceSpan{TraceID: trace, SpanID: id, Parent: parent, Name: name, Start: c.at, Attrs: make([]spanAttr, 0, 12)}
	s.attr("gen_ai.operation.name", operation)
	s.attr("gen_ai.agent.name", agentName)
	s.attr("gen_ai.provider.name", cmpOr(agentProviders[c.agent], c.agent))
	s.attr("gen_ai.conversation.id", sid)
	s.attr("session.id", sid)
	return s
}

func (b *spanBuilder) turnStart(out *spanBatch, c *hookContext) *spanEntry {
	key := c.f.turnKey()
	if key == "" {
		key = "event:" + c.e.ID
	}
	id := spanID("turn", c.session, key)
	if open := b.st.turn[c.session]; open != "" && open != id {
		// A prompt while a turn is open: the agent never said the
		// last one ended (an interrupt fires no Stop).
		b.close(out, b.st.entries[open], c.at, "cut_off", c.e.ID)
	}
	trace, parent := traceID(c.session, key), ""
	if tp, ok := parseTraceparent(c.e.Traceparent); ok {
		trace, parent = tp.trace, tp.span
	}
	s := baseSpan(c, trace, id, parent, "invoke_agent "+c.agent, "invoke_agent", c.agent)
	s.attr("prompt.id", c.f.PromptID)
	s.attr("difflore.turn.id", cmpOr(c.f.TurnID, c.f.GenerationID))
	s.attr("gen_ai.request.model", c.f.Model)
	en := &spanEntry{Span: s, Kind: entryTurn, Session: c.session, Match: key, Seq: c.e.Seq, StartEvent: c.e.ID}
	if prev := b.st.entries[id]; prev != nil && prev.State == entryEndOnly {
		// Its end came first (the start's batch was retried).
		en.Span.End, en.Span.Error, en.Span.Attrs = prev.Span.End, prev.Span.Error, mergeAttrs(en.Span.Attrs, prev.Span.Attrs)
		en.EndEvent, en.State = prev.EndEvent, entryClosed
		b.st.put(en)
		b.st.setIndex(b.st.byEvent, c.e.ID, id)
		out.spans = append(out.spans, en.Span)
		return en
	}
	b.st.put(en)
	b.st.setIndex(b.st.byEvent, c.e.ID, id)
	b.st.setIndex(b.st.turn, c.session, id)
	return en
}

func (b *spanBuilder) turnEnd(out *spanBatch, c *hookContext) *spanEntry {
	key := c.f.turnKey()
	var en *spanEntry
	if key != "" {
		en = b.st.entries[spanID("turn", c.session, key)]
	}
	if en == nil {
		if open := b.st.turn[c.session]; open != "" {
			en = b.st.entries[open]
		}
	}
	if en != nil && en.State != entryOpen {
		return en // a second end, or the end of a turn already closed
	}
	fail := failure(c)
	if en == nil {
		if key == "" {
			key = "end:" + c.e.ID
		}
		return b.endOnly(c, entryTurn, spanID("turn", c.session, key), traceID(c.session, key), "invoke_agent "+c.agent, "invoke_agent", c.agent, fail)
	}
	b.closeChildren(out, en.Span.SpanID, c.at, c.e.ID)
	return b.finish(out, en, c.at, fail, "", c.e.ID)
}

// failure is the error.type of an end hook, empty for a success.
func failure(c *hookContext) string {
	switch c.role {
	case roleTurnFail:
		var s string
		if json.Unmarshal(c.f.Error, &s) == nil && s != "" {
			return s
		}
		return "_OTHER"
	case roleToolFail:
		if c.f.IsInterrupt {
			return "interrupted"
		}
		return "tool_error"
	case roleTurnEnd:
		if c.f.Status == "error" {
			return "_OTHER"
		}
	case roleToolEnd:
		// Gemini's AfterTool reports a failed tool in tool_response.error.
		var r struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(c.f.ToolResponse, &r) == nil && len(r.Error) > 0 && string(r.Error) != "null" && string(r.Error) != `""` {
			return "tool_error"
		}
	}
	return ""
}

func (b *spanBuilder) childStart(out *spanBatch, c *hookContext) *spanEntry {
	kind, match, name := entryTool, c.f.callKey(), c.f.toolName()
	if c.role == roleSubStart {
		kind, match, name = entrySub, c.f.AgentID, cmpOr(c.f.AgentType, "subagent")
	}
	key := match
	if key == "" {
		key = "event:" + c.e.ID
	}
	id := spanID(kindName(kind), c.session, key)
	parent := b.parentOf(c)
	trace := traceID(c.session, "no turn")
	parentID := ""
	if parent != nil {
		trace, parentID = parent.Span.TraceID, parent.Span.SpanID
	}
	var s traceSpan
	if kind == entrySub {
		s = baseSpan(c, trace, id, parentID, "invoke_agent "+name, "invoke_agent", name)
		s.attr("gen_ai.agent.id", c.f.AgentID)
	} else {
		s = baseSpan(c, trace, id, parentID, "execute_tool "+name, "execute_tool", c.agent)
		s.attr("gen_ai.tool.name", name)
		s.attr("gen_ai.tool.call.id", match)
		if b.content {
			s.attr("gen_ai.tool.call.arguments", string(cmpRaw(c.f.ToolInput, c.f.ToolArgs)))
		}
	}
	en := &spanEntry{Span: s, Kind: kind, Session: c.session, Match: match, Tool: name, Seq: c.e.Seq, StartEvent: c.e.ID}
	if prev := b.st.entries[id]; prev != nil && prev.State == entryEndOnly {
		en.Span.End, en.Span.Error, en.Span.Attrs = prev.Span.End, prev.Span.Error, mergeAttrs(en.Span.Attrs, prev.Span.Attrs)
		en.EndEvent, en.State = prev.EndEvent, entryClosed
		b.st.put(en)
		b.st.setIndex(b.st.byEvent, c.e.ID, id)
		out.spans = append(out.spans, en.Span)
		return en
	}
	b.st.put(en)
	b.st.setIndex(b.st.byEvent, c.e.ID, id)
	return en
}

func kindName(kind int) string {
	switch kind {
	case entryTurn:
		return "turn"
	case entrySub:
		return "sub"
	}
	return "tool"
}

func cmpRaw(vs ...json.RawMessage) json.RawMessage {
	for _, v := range vs {
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

// parentOf is the span a tool call or subagent runs under: the open
// subagent it names (Claude's agent_id on a subagent's hooks), else the
// session's open turn; nil outside any turn.
func (b *spanBuilder) parentOf(c *hookContext) *spanEntry {
	if c.role != roleSubStart && c.f.AgentID != "" {
		if en := b.st.entries[spanID("sub", c.session, c.f.AgentID)]; en != nil && en.State == entryOpen {
			return en
		}
	}
	if id := b.st.turn[c.session]; id != "" {
		return b.st.entries[id]
	}
	return nil
}

func (b *spanBuilder) childEnd(out *spanBatch, c *hookContext) *spanEntry {
	kind, match, name := entryTool, c.f.callKey(), c.f.toolName()
	if c.role == roleSubEnd {
		kind, match, name = entrySub, c.f.AgentID, cmpOr(c.f.AgentType, "subagent")
	}
	var en *spanEntry
	if match != "" {
		en = b.st.entries[spanID(kindName(kind), c.session, match)]
	} else {
		en = b.oldestOpen(c.session, kind, name)
	}
	fail := failure(c)
	if en == nil || en.State != entryOpen {
		if en != nil && en.State == entryClosed {
			return en // the end of a span already closed: nothing new
		}
		key := match
		if key == "" {
			key = "end:" + c.e.ID
		}
		parent := b.parentOf(c)
		trace, parentID := traceID(c.session, "no turn"), ""
		if parent != nil {
			trace, parentID = parent.Span.TraceID, parent.Span.SpanID
		}
		op, agentName, spanName := "execute_tool", c.agent, "execute_tool "+name
		if kind == entrySub {
			op, agentName, spanName = "invoke_agent", name, "invoke_agent "+name
		}
		en = b.endOnly(c, kind, spanID(kindName(kind), c.session, key), trace, spanName, op, agentName, fail)
		en.Span.Parent, en.Match, en.Tool = parentID, match, name
		if kind == entryTool {
			en.Span.attr("gen_ai.tool.name", name)
			en.Span.attr("gen_ai.tool.call.id", match)
		}
		if c.f.Duration != nil && *c.f.Duration >= 0 {
			// Cursor's postToolUse says how long the tool ran: the
			// span is whole without a start hook.
			en.Span.Start = c.at - int64(*c.f.Duration*float64(time.Millisecond))
			en.State = entryClosed
			b.st.put(en)
			out.spans = append(out.spans, en.Span)
		}
		return en
	}
	if kind == entrySub {
		b.closeChildren(out, en.Span.SpanID, c.at, c.e.ID)
	}
	if kind == entryTool && b.content {
		en.Span.attr("gen_ai.tool.call.result", string(cmpRaw(c.f.ToolResponse, c.f.ToolOutput, c.f.Error)))
	}
	return b.finish(out, en, c.at, fail, "", c.e.ID)
}

// oldestOpen is the open span of kind and name in session that started
// first: ends of an agent without call ids are paired by order.
func (b *spanBuilder) oldestOpen(session string, kind int, name string) *spanEntry {
	var best *spanEntry
	for _, en := range b.st.open {
		if en.State == entryOpen && en.Kind == kind && en.Session == session && en.Match == "" && en.Tool == name &&
			(best == nil || en.Seq < best.Seq) {
			best = en
		}
	}
	return best
}

// endOnly remembers an end whose start has not come: the start may be in
// a batch that is being retried. It is sent when its start comes, or as
// "no_start" at the session's end or after spanBound.
func (b *spanBuilder) endOnly(c *hookContext, kind int, id, trace, name, op, agentName, fail string) *spanEntry {
	s := baseSpan(c, trace, id, "", name, op, agentName)
	s.End = c.at
	if fail != "" {
		s.attr("error.type", fail)
		s.Error = fail
	}
	en := &spanEntry{Span: s, Kind: kind, State: entryEndOnly, Session: c.session, Seq: c.e.Seq, EndEvent: c.e.ID}
	b.st.put(en)
	b.st.setIndex(b.st.byEvent, c.e.ID, id)
	return en
}

// finish closes an open span at end and queues it to be sent.
func (b *spanBuilder) finish(out *spanBatch, en *spanEntry, end int64, fail, unfinished, eventID string) *spanEntry {
	n := *en
	// A copy with room for the end's attributes: the entry's own array
	// is what a rollback restores.
	n.Span.Attrs = append(make([]spanAttr, 0, len(en.Span.Attrs)+3), en.Span.Attrs...)
	n.Span.End = max(end, n.Span.Start)
	if fail != "" {
		n.Span.attr("error.type", fail)
		n.Span.Error = fail
	}
	n.Span.attr(unfinishedAttr, unfinished)
	n.State, n.EndEvent = entryClosed, eventID
	b.st.put(&n)
	if _, ok := b.st.byEvent[eventID]; !ok {
		b.st.setIndex(b.st.byEvent, eventID, n.Span.SpanID)
	}
	if n.Kind == entryTurn && b.st.turn[n.Session] == n.Span.SpanID {
		b.st.setIndex(b.st.turn, n.Session, "")
	}
	out.spans = append(out.spans, n.Span)
	return b.st.entries[n.Span.SpanID]
}

// close closes an open span as unfinished, with its open children first.
func (b *spanBuilder) close(out *spanBatch, en *spanEntry, at int64, why, eventID string) {
	if en == nil || en.State != entryOpen {
		return
	}
	b.closeChildren(out, en.Span.SpanID, at, eventID)
	b.finish(out, en, at, "", why, eventID)
}

// closeChildren closes the open spans under parent as cut off, and sends
// the ends under it whose starts never came.
func (b *spanBuilder) closeChildren(out *spanBatch, parent string, at int64, eventID string) {
	for _, ch := range b.openWhere(func(en *spanEntry) bool { return en.Span.Parent == parent }) {
		b.closeOne(out, ch, at, "cut_off", eventID)
	}
}

// openWhere lists the open and end-only entries that match, in the order
// they started, so that what is sent does not depend on map order.
func (b *spanBuilder) openWhere(match func(*spanEntry) bool) []*spanEntry {
	var list []*spanEntry
	for _, en := range b.st.open {
		if match(en) {
			list = append(list, en)
		}
	}
	slices.SortFunc(list, func(a, b *spanEntry) int {
		if c := cmpInt64(a.Seq, b.Seq); c != 0 {
			return c
		}
		return strings.Compare(a.Span.SpanID, b.Span.SpanID)
	})
	return list
}

// closeSession closes what is open in a session, as why; an end whose
// start never came is sent as it is, with its start at its end.
func (b *spanBuilder) closeSession(out *spanBatch, session string, at int64, why, eventID string) {
	// Turns first: closing one closes what runs under it.
	for _, en := range b.openWhere(func(en *spanEntry) bool { return en.Session == session && en.Kind == entryTurn }) {
		b.closeOne(out, en, at, why, eventID)
	}
	for _, en := range b.openWhere(func(en *spanEntry) bool { return en.Session == session }) {
		b.closeOne(out, en, at, why, eventID)
	}
}

func (b *spanBuilder) closeOne(out *spanBatch, en *spanEntry, at int64, why, eventID string) {
	if en.State == entryEndOnly {
		n := *en
		n.Span.Attrs = slices.Clone(en.Span.Attrs)
		n.Span.Start = n.Span.End
		n.Span.attr(unfinishedAttr, "no_start")
		n.State = entryClosed
		b.st.put(&n)
		out.spans = append(out.spans, n.Span)
		return
	}
	if en.State == entryOpen {
		b.close(out, en, at, why, eventID)
	}
}

// sweep closes what started before limit and is still open, and forgets
// closed spans older than that.
func (b *spanBuilder) sweep(out *spanBatch, limit int64) {
	for _, en := range b.openWhere(func(en *spanEntry) bool { return max(en.Span.Start, en.Span.End) < limit }) {
		at := en.Span.Start
		if en.State == entryEndOnly {
			at = en.Span.End
		}
		b.closeOne(out, en, at, "timeout", "")
	}
	var old []string
	for id, en := range b.st.entries {
		if en.State == entryClosed && max(en.Span.End, en.Span.Start) < limit {
			old = append(old, id)
		}
	}
	slices.Sort(old)
	for _, id := range old {
		b.st.remove(id)
	}
}

// remove forgets an entry, with its undo.
func (st *spanState) remove(id string) {
	en := st.entries[id]
	if en == nil {
		return
	}
	st.undo = append(st.undo, undoStep{id: id, entry: en, removal: true, wasDirty: st.dirty[id]})
	delete(st.entries, id)
	st.dirty[id] = true
	for _, ev := range []string{en.StartEvent, en.EndEvent} {
		if ev != "" && st.byEvent[ev] == id {
			st.setIndex(st.byEvent, ev, "")
		}
	}
}

// mergeAttrs adds to a the attributes of b it does not have.
func mergeAttrs(a, b []spanAttr) []spanAttr {
	for _, x := range b {
		if !slices.ContainsFunc(a, func(y spanAttr) bool { return y.Key == x.Key }) {
			a = append(a, x)
		}
	}
	return a
}

// traceparent is a W3C traceparent header's ids.
type traceparent struct{ trace, span string }

// parseTraceparent reads "00-<32 hex>-<16 hex>-<2 hex>"; ids of all zeros
// are invalid.
func parseTraceparent(v string) (traceparent, bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return traceparent{}, false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return traceparent{}, false
	}
	for _, p := range parts[:4] {
		if _, err := hex.DecodeString(p); err != nil || strings.ToLower(p) != p {
			return traceparent{}, false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return traceparent{}, false
	}
	return traceparent{parts[1], parts[2]}, true
}
