package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// vscodePrompt is a UserPromptSubmit payload as VS Code's agent hooks send
// it, with the common fields of its hooks reference
// (code.visualstudio.com/docs/agents/reference/hooks-reference):
// timestamp, hookEventName, sessionId, transcript_path, cwd.
const vscodePrompt = `{"timestamp":"2026-12-07T13:40:02.117Z","hookEventName":"UserPromptSubmit","sessionId":"b1f0c2a8-5d7e-4c1b-9f3a-0e6d2c4b8a17","transcript_path":"/home/dev/.vscode/transcripts/b1f0c2a8.jsonl","cwd":"/home/dev/project","prompt":"hi"}`

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttributeKind: the kind names the host whose payload it is, whatever
// file's hook ran, for the real payloads of each host.
func TestAttributeKind(t *testing.T) {
	for _, c := range []struct {
		kind, payload, want string
	}{
		{"claude.UserPromptSubmit", "testdata/hooks/claude-2.1.328.UserPromptSubmit.json", "claude.UserPromptSubmit"},
		{"claude.StopFailure", "testdata/hooks/claude-2.1.332.StopFailure.json", "claude.StopFailure"},
		{"claude.PreToolUse", "testdata/hooks/claude-docs.PreToolUse.json", "claude.PreToolUse"},
		{"claude.UserPromptSubmit", "testdata/hosts/copilot-pascal-1.0.102.UserPromptSubmit.json", "copilot.UserPromptSubmit"},
		{"claude.PreToolUse", "testdata/hosts/copilot-pascal-1.0.102.PreToolUse.json", "copilot.PreToolUse"},
		{"claude.SessionStart", "testdata/hosts/copilot-pascal-1.0.102.SessionStart.json", "copilot.SessionStart"},
		{"claude.UserPromptSubmit", "", "vscode.UserPromptSubmit"},
		{"copilot.userPromptSubmitted", "", "vscode.userPromptSubmitted"},
		{"copilot.userPromptSubmitted", "testdata/hooks/copilot-1.0.102.userPromptSubmitted.json", "copilot.userPromptSubmitted"},
		{"claude.SessionStart", "testdata/hooks/cursor-docs.sessionStart.json", "cursor.SessionStart"},
		{"qwen.UserPromptSubmit", "testdata/hooks/qwen-0.24.4.UserPromptSubmit.json", "qwen.UserPromptSubmit"},
		{"droid.SessionStart", "testdata/hooks/droid-0.225.2.SessionStart.json", "droid.SessionStart"},
	} {
		p := []byte(vscodePrompt)
		if c.payload != "" {
			p = readFixture(t, c.payload)
		}
		keys, _ := topLevelKeys(p)
		if got := attributeKind(c.kind, keys); got != c.want {
			t.Errorf("%s with %s: kind %s, want %s", c.kind, c.payload, got, c.want)
		}
	}
}

// TestTopLevelKeysNested: a key inside a nested object or a string value
// is not a top-level key.
func TestTopLevelKeysNested(t *testing.T) {
	p := []byte(`{"tool_input":{"hookEventName":"x","timestamp":1},"note":"\"sessionId\": 1, {\"cursor_version\"","session_id":"s"}`)
	if keys, _ := topLevelKeys(p); keys != 0 {
		t.Errorf("keys %b, want none at the top level", keys)
	}
	keys, stamp := topLevelKeys([]byte(`{"a":[1,{"b":2}], "timestamp" : 1796649007408,"sessionId":"s"}`))
	if keys != keyTimestamp|keySessionIDCamel || string(stamp) != "1796649007408" {
		t.Errorf("keys %b stamp %q", keys, stamp)
	}
}

// installedHook installs agent's hooks for bin into userHome and returns
// the command its hook on event runs.
func installedHook(t *testing.T, bin, home, userHome, agent, event string) string {
	t.Helper()
	cmd := exec.Command(bin, "hooks", "install", agent)
	cmd.Env = hookEnv(home, userHome)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hooks install %s: %v\n%s", agent, err, out)
	}
	a, _ := findAgent(agent)
	path := filepath.Join(a.userDir(func(string) string { return "" }, userHome), a.file)
	doc, err := parseJSON(readFixture(t, path))
	if err != nil {
		t.Fatal(err)
	}
	command := ""
	a.eachHook(a.hooksObject(doc).get(event), func(h *jsonValue) { command, _ = h.get(a.commandKey()).str() })
	if command == "" {
		t.Fatalf("%s: no hook on %s in %s", agent, event, path)
	}
	return command
}

// fire runs a hook command as a host does, payload on standard input,
// through sh -c, or through wrap (a process of its own, as another host
// would be) when set.
func fire(t *testing.T, home, userHome, command string, payload []byte, wrap ...string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", command)
	if len(wrap) > 0 {
		cmd = exec.Command(wrap[0], append(wrap[1:], "/bin/sh", "-c", command)...)
	}
	cmd.Env = hookEnv(home, userHome)
	cmd.Stdin = bytes.NewReader(payload)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runBounded(t, cmd); err != nil || stdout.Len() > 0 || stderr.Len() > 0 {
		t.Fatalf("%s: %v\nstdout: %q\nstderr: %q", command, err, stdout.Bytes(), stderr.Bytes())
	}
}

// drainedKinds drains the outbox of env to an endpoint and returns the kinds
// of the events it got, in order.
func drainedKinds(env *testEnv) []string {
	env.t.Helper()
	ep := newEndpoint(env.t, nil)
	env.mustCLI("drain", "--endpoint", ep.URL)
	var kinds []string
	for _, r := range ep.requests() {
		for _, e := range r.batch.Events {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

// TestHookAttribution runs Claude Code's installed hook command as Copilot
// CLI (a trusted project's .claude/settings.json, PascalCase events) and
// as VS Code run it: the events arrive under the host's name, not
// claude's; Claude Code's own payload stays claude's.
func TestHookAttribution(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("fires hooks through /bin/sh, as hosts do on Unix")
	}
	t.Parallel()
	env := newTestEnv(t)
	home := env.home
	userHome := t.TempDir()
	bin := hookBinary(t)
	prompt := installedHook(t, bin, home, userHome, "claude", "UserPromptSubmit")
	fire(t, home, userHome, prompt, readFixture(t, "testdata/hosts/copilot-pascal-1.0.102.UserPromptSubmit.json"))
	fire(t, home, userHome, prompt, []byte(vscodePrompt))
	fire(t, home, userHome, prompt, readFixture(t, "testdata/hooks/claude-2.1.328.UserPromptSubmit.json"))
	want := []string{"copilot.UserPromptSubmit", "vscode.UserPromptSubmit", "claude.UserPromptSubmit"}
	if got := drainedKinds(env); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// TestHookDoubleFiringStoredOnce: VS Code runs both Claude's and Copilot
// CLI's installed hooks for one prompt, and the Claude hook again as found
// on a second path (microsoft/vscode#303926): one event is stored. Two
// distinct firings with equal payloads are both kept: Claude Code's, which
// carry no per-firing stamp, and the same stamped payload from two host
// processes.
func TestHookDoubleFiringStoredOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("fires hooks through /bin/sh, as hosts do on Unix")
	}
	t.Parallel()
	env := newTestEnv(t)
	home := env.home
	userHome := t.TempDir()
	bin := hookBinary(t)
	claudeHook := installedHook(t, bin, home, userHome, "claude", "UserPromptSubmit")
	copilotHook := installedHook(t, bin, home, userHome, "copilot", "userPromptSubmitted")
	fire(t, home, userHome, claudeHook, []byte(vscodePrompt))
	fire(t, home, userHome, copilotHook, []byte(vscodePrompt))
	fire(t, home, userHome, claudeHook, []byte(vscodePrompt))
	if got := drainedKinds(env); len(got) != 1 || got[0] != "vscode.UserPromptSubmit" {
		t.Errorf("one VS Code firing run through three hooks: delivered %v, want one vscode.UserPromptSubmit", got)
	}

	// Distinct firings, equal payloads.
	claudePrompt := readFixture(t, "testdata/hooks/claude-2.1.328.UserPromptSubmit.json")
	fire(t, home, userHome, claudeHook, claudePrompt)
	fire(t, home, userHome, claudeHook, claudePrompt)
	// Two host processes (timeout stays the shell's parent, a process
	// of its own each time) stamping the same millisecond.
	pascal := readFixture(t, "testdata/hosts/copilot-pascal-1.0.102.UserPromptSubmit.json")
	fire(t, home, userHome, claudeHook, pascal, "timeout", "60")
	fire(t, home, userHome, claudeHook, pascal, "timeout", "60")
	want := []string{"claude.UserPromptSubmit", "claude.UserPromptSubmit", "copilot.UserPromptSubmit", "copilot.UserPromptSubmit"}
	if got := drainedKinds(env); !slices.Equal(got, want) {
		t.Errorf("four distinct firings: delivered %v, want %v", got, want)
	}
}
