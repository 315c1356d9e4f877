package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
)

// An agent may hand a hook its context in environment variables, with
// nothing on standard input and no session id: Kiro's hooks do (its
// Prompt Submit trigger sets USER_PROMPT for a shell command). For such a
// hook, 'enqueue --env NAMES' builds the payload from the environment and
// never reads standard input, which such an agent may leave open:
//
//	{"session_id": "host-…", "cwd": "…", "USER_PROMPT": "…"}
//
// Each variable of the comma-separated NAMES that is set, and not empty,
// becomes a member of that name, its value as a string, as the agent gave
// it; another is left out. cwd is the folder the agent ran the hook in (Kiro's
// workspace).
//
// session_id, which becomes the event's session.id, is what the agent does
// not say: a hash of the agent's process that ran the hook (hostProcess:
// the nearest ancestor that is not a shell, by its PID and start time,
// which name one process for as long as the machine runs) and cwd. Two
// workspaces, two agent processes, or one process before and after a
// restart never share it: they differ in one or the other. Its limit: it
// names an agent process on a workspace (a Kiro window), not a chat, so
// every chat of that window, one after another or side by side, shares
// it. An agent that ran each hook from a fresh process of its own would
// give each event a session of its own: sessions split, never merge. When
// the OS cannot name the process, session_id is left out, not guessed.

// envPayload is the payload of 'enqueue --env names'.
func envPayload(getenv func(string) string, names string) []byte {
	cwd, _ := os.Getwd()
	var b strings.Builder
	b.WriteByte('{')
	if host := hostProcess(); host != "" {
		b.WriteString(`"session_id":`)
		b.Write(jsonString(hostSessionID(host, cwd)))
		b.WriteByte(',')
	}
	b.WriteString(`"cwd":`)
	b.Write(jsonString(cwd))
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		v := getenv(name)
		if name == "" || v == "" {
			continue
		}
		b.WriteByte(',')
		b.Write(jsonString(name))
		b.WriteByte(':')
		b.Write(jsonString(v))
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// hostSessionID is the session id of the hooks run by the agent process
// host in the folder cwd (see above).
func hostSessionID(host, cwd string) string {
	sum := sha256.Sum256([]byte(host + "\x00" + cwd))
	return "host-" + hex.EncodeToString(sum[:16])
}

// jsonString is s as a JSON string, with <, > and & as they are; invalid
// UTF-8 becomes U+FFFD.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
