package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// A hook file is not only read by its own agent: VS Code's agent hooks run
// the hooks in ~/.claude/settings.json and ~/.copilot/hooks/; Copilot CLI
// runs a trusted project's .claude/settings.json; Cursor runs Claude's
// hooks once its third-party option is on. The --kind a hook command
// carries names the file's agent, so enqueue decides who fired the hook
// from what the hook receives, and the kind names that host.
//
// The payload's shape decides, for each host (top-level keys only):
//
//   - VS Code: "hookEventName", in camelCase beside snake_case tool fields
//     (code.visualstudio.com/docs/agents/reference/hooks-reference, its
//     common input fields). No agent CLI sends that key.
//   - Cursor: "cursor_version", which every Cursor payload carries
//     (cursor.com/docs/hooks, the common fields).
//   - Copilot CLI: with camelCase events, "sessionId" and no
//     "hookEventName" (its own payloads: sessionId, toolName); with the
//     PascalCase events of a Claude-shaped file, "hook_event_name" with a
//     "timestamp" and no "transcript_path" (copilot-pascal-1.0.102 in
//     testdata/hosts). Claude Code sends no "timestamp" at all, and the
//     Claude-compatible agents that do (Qwen Code) send "transcript_path"
//     and read files of their own.
//   - Claude Code: none of the above; the file's own agent.
//
// The environment was weighed and decides nothing: VS Code's variables
// (VSCODE_PID, TERM_PROGRAM=vscode) are inherited by every agent started in
// its terminal, so Claude Code run there would be taken for VS Code, and
// Claude Code's CLAUDECODE=1 is inherited by any agent started from its
// shell tool. A payload is written by the host that fires the hook, and
// by nothing else.
//
// Only the kinds of the agents whose files other hosts read (claude,
// copilot) are looked at: an agent whose file only it reads keeps its
// kind, and its hook pays nothing for this.

// hostReadFiles are the agents whose hook files other hosts also run.
var hostReadFiles = [...]string{"claude", "copilot"}

// payloadKeys are the top-level keys the host and the firing key are read
// from, as bits.
const (
	keyHookEventName = 1 << iota
	keyCursorVersion
	keySessionIDCamel
	keyHookEventSnake
	keyTimestamp
	keyTranscriptPath
	keyToolName
	keyToolCallID
	keyExecutionID
)

// payloadKeyBits names the bit of each key looked for.
var payloadKeyBits = [...]struct {
	key string
	bit int
}{
	{"hookEventName", keyHookEventName},
	{"cursor_version", keyCursorVersion},
	{"sessionId", keySessionIDCamel},
	{"hook_event_name", keyHookEventSnake},
	{"timestamp", keyTimestamp},
	{"transcript_path", keyTranscriptPath},
	{"tool_name", keyToolName},
	{"toolName", keyToolName},
	{"tool_use_id", keyToolCallID},
	{"tool_call_id", keyToolCallID},
	{"toolCallId", keyToolCallID},
	{"execution_id", keyExecutionID},
}

// attributeKind returns the kind of an event whose hook command said
// kind: the same, or with its agent replaced by the host that fired the
// hook, as the payload's shape shows (see above).
func attributeKind(kind string, keys int) string {
	agent, event, ok := strings.Cut(kind, ".")
	if !ok || !isHostReadFile(agent) {
		return kind
	}
	host := agent
	switch {
	case keys&keyHookEventName != 0:
		host = "vscode"
	case keys&keyCursorVersion != 0:
		host = "cursor"
	case keys&keySessionIDCamel != 0:
		host = "copilot"
	case keys&keyHookEventSnake != 0 && keys&keyTimestamp != 0 && keys&keyTranscriptPath == 0:
		host = "copilot"
	}
	if host == agent {
		return kind
	}
	return host + "." + event
}

func isHostReadFile(agent string) bool {
	for _, a := range hostReadFiles {
		if a == agent {
			return true
		}
	}
	return false
}

// One firing is one event. A host that runs two of difflore's hooks for
// one firing (VS Code reads both ~/.copilot/hooks and ~/.claude/settings.json,
// and runs a hook found on two paths twice, microsoft/vscode#303926) hands
// both the same payload; both hooks then store the event under the same
// id, and the outbox keeps the first (a repeated id is stored once).
//
// The id is a hash of: the process of the host that ran the hook (its PID
// and start time, the nearest ancestor of enqueue that is not a shell:
// hostProcess), and the payload's bytes, taken only when the payload
// carries something the host makes anew for each firing: a timestamp to
// the millisecond (Copilot CLI, VS Code, Qwen Code, Cline) or an
// execution_id (Windsurf), and, for a tool event, the tool call's id.
// Without such a stamp (Claude Code, Codex, Gemini CLI: none of which runs
// one hook twice), each event gets a fresh id, as before.
//
// Why this cannot merge two distinct firings: a PID and its start time
// name one process for as long as the machine runs, so firings of two
// hosts, or of a host before and after a restart, never share a key. One
// host process stamps each firing as it makes it: two of its firings share
// every byte only if they are the same event of the same session in the
// same millisecond with the same content; a session's prompts, turns,
// compactions and session starts and ends follow one another, each at
// least a model call apart, and tool events, which may run side by side,
// are keyed only when they carry the tool call's id (unique per call), so
// Copilot CLI's camelCase tool events, which carry none, get fresh ids.
// What is left alike in every byte is the same firing.

// attributeFiring returns the kind and id an event is stored under: the
// kind naming the host that fired the hook (attributeKind), and the id of
// the firing (firingID) unless the hook gave one, else id.
func attributeFiring(kind, id string, payload []byte, idGiven bool) (string, string) {
	keys, stamp := topLevelKeys(payload)
	kind = attributeKind(kind, keys)
	if idGiven || keys&(keyTimestamp|keyExecutionID) == 0 {
		return kind, id
	}
	if f := firingID(payload, keys, stamp, hostProcess()); f != "" {
		id = f
	}
	return kind, id
}

// firingID is the id of the event for a payload with the given top-level
// keys, fired by host (hostProcess's answer), or "" when the payload
// carries no per-firing stamp or the host is unknown.
func firingID(payload []byte, keys int, stamp []byte, host string) string {
	if host == "" || keys&(keyTimestamp|keyExecutionID) == 0 {
		return ""
	}
	if keys&keyToolName != 0 && keys&keyToolCallID == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(host))
	h.Write([]byte{0})
	h.Write(payload)
	sum := h.Sum(nil)
	// A UUIDv7 like every other event id, time-ordered by the host's
	// stamp (the same for both hooks of a firing), its other bits the
	// hash's.
	ms, ok := stampMillis(stamp)
	if !ok {
		return "firing-" + hex.EncodeToString(sum[:16])
	}
	var b [16]byte
	copy(b[:], sum[:16])
	binary.BigEndian.PutUint64(b[:8], uint64(ms)<<16|uint64(binary.BigEndian.Uint16(b[6:8])))
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// stampMillis reads a payload's timestamp value: an RFC 3339 string (VS
// Code, Qwen Code, Cline, Windsurf) or a number of Unix milliseconds
// (Copilot CLI's camelCase payloads).
func stampMillis(v []byte) (int64, bool) {
	if len(v) > 1 && v[0] == '"' {
		t, err := time.Parse(time.RFC3339Nano, string(v[1:len(v)-1]))
		return t.UnixMilli(), err == nil && t.UnixMilli() > 0
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil && n > 0
}

// topLevelKeys returns the bits of payloadKeyBits whose keys the payload,
// a JSON object, has at its top level, and the text of its timestamp's
// value. It scans the bytes once, without decoding anything: a key is a
// string at depth 1 that follows '{' or ','.
func topLevelKeys(p []byte) (bits int, stamp []byte) {
	depth := 0
	expectKey := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '{', '[':
			depth++
			expectKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end := stringEnd(p, i) // just past the closing quote
			if end < 0 {
				return bits, stamp
			}
			if expectKey && depth == 1 {
				bit := keyBit(p[i+1 : end-1])
				bits |= bit
				expectKey = false
				if bit == keyTimestamp {
					stamp = scalarAfterColon(p, end)
				}
			}
			i = end - 1
		}
	}
	return bits, stamp
}

// scalarAfterColon is the text of the string or number after the colon
// that follows p[i:].
func scalarAfterColon(p []byte, i int) []byte {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r' || p[i] == ':') {
		i++
	}
	if i < len(p) && p[i] == '"' {
		if end := stringEnd(p, i); end > 0 {
			return p[i:end]
		}
		return nil
	}
	j := i
	for j < len(p) && (p[j] >= '0' && p[j] <= '9' || p[j] == '-' || p[j] == '.') {
		j++
	}
	return p[i:j]
}

func keyBit(key []byte) int {
	for _, k := range payloadKeyBits {
		if string(key) == k.key {
			return k.bit
		}
	}
	return 0
}

// isShell reports whether a process's name is that of a shell hosts run
// hook commands through.
func isShell(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".exe")
	switch name {
	case "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "cmd", "powershell", "pwsh":
		return true
	}
	return false
}
