package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hookBinary copies the test binary, which runs as difflore when asMainEnv
// is set, into a folder whose path has a space, as "Program Files" or a
// user name has: the hook commands must reach it all the same.
func hookBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "my tools")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "difflore"+filepath.Ext(exe))
	writeExecutable(t, path, data)
	return path
}

// hookEnv is the environment a hook runs in: the agent's, which is the
// user's, plus what makes the test binary act as difflore in home.
func hookEnv(home, userHome string) []string {
	return append(os.Environ(), asMainEnv+"=1", "DIFFLORE_HOME="+home,
		"DIFFLORE_CLOUD_URL=", "DIFFLORE_CLOUD_TOKEN=", "DIFFLORE_AUTOSTART=",
		"HOME="+userHome, "USERPROFILE="+userHome,
		"CLAUDE_CONFIG_DIR=", "CODEX_HOME=", "GEMINI_CLI_HOME=", "COPILOT_HOME=")
}

// hookPayload is one payload of testdata/hooks.
type hookPayload struct {
	file, agent, event string
	data               []byte
}

func hookPayloads(t *testing.T) []hookPayload {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "hooks", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no payloads in testdata/hooks: %v", err)
	}
	var out []hookPayload
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		agentAndSource, event, ok := strings.Cut(name, ".")
		// The source may hold dots (a version): the event is after the last.
		event = event[strings.LastIndexByte(event, '.')+1:]
		agent, _, _ := strings.Cut(agentAndSource, "-")
		if !ok || event == "" {
			t.Fatalf("payload file %s is not named AGENT-SOURCE.EVENT.json", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hookPayload{file: filepath.Base(f), agent: agent, event: event, data: data})
	}
	return out
}

// TestHookCommandsDeliverPayloads runs the exact commands 'hooks print'
// emits, for a difflore whose path has a space, through the shells the
// agents run them with, feeding each agent's real payloads on standard
// input as the agent does: every run exits 0 with nothing on stdout or
// stderr (agents read both), and every payload reaches the endpoint byte
// for byte under its agent.event kind.
func TestHookCommandsDeliverPayloads(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	userHome := t.TempDir()
	bin := hookBinary(t)
	payloads := hookPayloads(t)
	want := map[string][]byte{} // kind → payload
	for _, a := range agents {
		if a.custom != nil || a.script != "" {
			continue // their own tests: TestClineScriptsDeliverPayloads, TestAugmentHooks
		}
		print := exec.Command(bin, "hooks", "print", a.name)
		print.Env = hookEnv(home, userHome)
		var stderr bytes.Buffer
		print.Stderr = &stderr
		out, err := print.Output()
		if err != nil {
			t.Fatalf("hooks print %s: %v\n%s", a.name, err, stderr.Bytes())
		}
		doc, err := parseJSON(out)
		if err != nil {
			t.Fatalf("hooks print %s: not JSON: %v\n%s", a.name, err, out)
		}
		n := 0
		for _, p := range payloads {
			if p.agent != a.name {
				continue
			}
			n++
			command := ""
			a.eachHook(a.hooksObject(doc).get(p.event), func(h *jsonValue) { command, _ = h.get(a.commandKey()).str() })
			if command == "" {
				t.Errorf("%s: hooks print %s wires no command for %s", p.file, a.name, p.event)
				continue
			}
			if n == 1 {
				t.Logf("%s runs %s", a.name, command)
			}
			for shell, cmd := range hookShells(command) {
				cmd.Env = hookEnv(home, userHome)
				cmd.Stdin = bytes.NewReader(p.data)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := runBounded(t, cmd)
				if err != nil || stdout.Len() > 0 || stderr.Len() > 0 {
					t.Errorf("%s through %s: %s\nerror: %v\nstdout: %q\nstderr: %q", p.file, shell, command, err, stdout.Bytes(), stderr.Bytes())
				}
			}
			want[a.name+"."+p.event] = bytes.Trim(p.data, " \t\r\n")
		}
		if n == 0 {
			t.Errorf("no payload for %s in testdata/hooks", a.name)
		}
	}

	// An HTTP endpoint gets each payload byte for byte (a file: endpoint
	// puts a pretty-printed one on one line); RawMessage keeps its bytes.
	ep := newEndpoint(t, nil)
	e.mustCLI("drain", "--endpoint", ep.URL)
	got := map[string][]json.RawMessage{}
	for _, r := range ep.requests() {
		if r.err != nil {
			t.Fatalf("request: %v\n%s", r.err, r.raw)
		}
		for _, e := range r.batch.Events {
			got[e.Kind] = append(got[e.Kind], e.Payload)
		}
	}
	checkDeliveredOnce(t, want, got)
}

// checkDeliveredOnce checks that each payload of want (kind → payload)
// arrived byte for byte, once per shell it was run through (once when it
// is stamped per firing), with a session.id, and nothing else arrived.
func checkDeliveredOnce(t *testing.T, want map[string][]byte, got map[string][]json.RawMessage) {
	t.Helper()
	for kind, payload := range want {
		deliveries := got[kind]
		shells := len(hookShells("x"))
		// A payload stamped for each firing, run once per shell by this
		// one test process, is one firing run twice: stored once.
		if keys, stamp := topLevelKeys(payload); firingID(payload, keys, stamp, "host") != "" {
			shells = 1
		}
		if len(deliveries) != shells {
			t.Errorf("%s: delivered %d times, want %d (once per shell)", kind, len(deliveries), shells)
		}
		for _, d := range deliveries {
			if !bytes.Equal(d, payload) {
				t.Errorf("%s: delivered\n%s\nwant\n%s", kind, d, payload)
			}
			// Every agent here names its session, each in a field of its
			// own: the OTLP record's session.id is that.
			if sessionID(d) == "" {
				t.Errorf("%s: no session.id read from\n%s", kind, d)
			}
		}
	}
	for kind := range got {
		if _, ok := want[kind]; !ok {
			t.Errorf("delivered an event of kind %s, which no payload was sent as", kind)
		}
	}
}

// runBounded runs cmd and kills it if it runs for a minute: a hook that
// hangs fails the test rather than holding it.
func runBounded(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		return errors.New("still running after a minute: killed")
	}
}

// agentSettings is, per agent, a settings file as a user has it: other
// keys, and hooks of their own on an event difflore wires and on one it
// does not, indented with four spaces.
var agentSettings = map[string]string{
	"claude": `{
    "model": "opus",
    "permissions": {
        "allow": ["Bash(ls:*)"],
        "defaultMode": "acceptEdits"
    },
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 5}]
            }
        ],
        "WorktreeCreate": [{"hooks": [{"type": "command", "command": "make-tree"}]}]
    },
    "statusLine": {"type": "command", "command": "ccline", "padding": 0}
}
`,
	"codex": `{
    "hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done", "timeout": 1.5}]}]
    }
}
`,
	"cursor": `{
    "version": 1,
    "hooks": {
        "beforeShellExecution": [{"command": "./hooks/guard.sh"}],
        "afterFileEdit": [{"command": "prettier --write", "timeout": 30}]
    }
}
`,
	"copilot": `{
    "version": 1,
    "hooks": {
        "preToolUse": [{"type": "command", "bash": "./guard.sh", "powershell": "./guard.ps1", "timeoutSec": 5}],
        "userPromptSubmitted": [{"type": "command", "bash": "log-prompt", "timeoutSec": 30}]
    }
}
`,
	"qwen": `{
    "security": {"auth": {"selectedType": "openai"}},
    "hooks": {
        "PreToolUse": [{"matcher": "run_shell_command", "hooks": [{"type": "command", "command": "guard.sh", "timeout": 5000}]}],
        "MessageDisplay": [{"hooks": [{"type": "command", "command": "speak.sh"}]}]
    },
    "model": {"name": "qwen3-coder-plus"}
}
`,
	"droid": `{
    "PreToolUse": [{"matcher": "Execute", "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 5}]}],
    "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]
}
`,
	"windsurf": `{
    "hooks": {
        "pre_run_command": [{"command": "python3 guard.py", "show_output": true}],
        "post_write_code": [{"command": "prettier --write", "show_output": false}]
    }
}
`,
	"gemini": `{
    "general": {"vimMode": true},
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "hooks": {
        "BeforeTool": [{"matcher": "write_file", "hooks": [{"type": "command", "name": "lint", "command": "lint.sh"}]}]
    },
    "ui": {"theme": "GitHub"}
}
`,
}

// setUserHome points the user's home at a new folder and clears the
// agents' own variables for their folders, so that the settings files are
// the test's.
func setUserHome(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("USERPROFILE", dir)
	for _, v := range agentFolderVars {
		t.Setenv(v, "")
	}
	return dir
}

// agentFolderVars are the agents' own variables for their folders, which
// a test clears so that an agent's settings are found in the user's home.
var agentFolderVars = []string{"CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", "COPILOT_HOME"}

// setUserHome is setUserHome, in e: the process's environment is left
// alone, so that the test may run in parallel with others.
func (e *testEnv) setUserHome() string {
	dir := e.t.TempDir()
	e.setenv("HOME", dir)
	e.setenv("USERPROFILE", dir)
	for _, v := range agentFolderVars {
		e.setenv(v, "")
	}
	return dir
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// backups lists the backups of a settings file (or of the file a symlink
// at path leads to) in the data home; none is ever left beside the file.
func backups(t *testing.T, path string) []string {
	t.Helper()
	if beside, _ := filepath.Glob(path + "*.bak"); len(beside) > 0 {
		t.Errorf("backups beside %s: %v", path, beside)
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	m, err := filepath.Glob(filepath.Join(backupDir(config{home: os.Getenv("DIFFLORE_HOME")}, path), "*.bak"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHooksInstall installs into a settings file that holds other keys and
// hooks: they stay, in their order and indentation; every event is wired
// once; the file as it was is kept beside it; a second install changes no
// byte; an install for a moved binary replaces the entries rather than
// adding more; --dry-run writes nothing; uninstall gives back the file as
// it was.
func TestHooksInstall(t *testing.T) {
	testHome(t)
	for _, a := range agents {
		if a.custom != nil || a.script != "" {
			continue // TestClineInstall, TestAugmentHooks
		}
		t.Run(a.name, func(t *testing.T) {
			setUserHome(t)
			path, err := a.settingsPath(os.Getenv, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			original := []byte(agentSettings[a.name])
			if err := os.WriteFile(path, original, 0o640); err != nil {
				t.Fatal(err)
			}
			read := func() []byte {
				t.Helper()
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}

			// A dry run shows the change and writes nothing.
			out := mustCLI(t, "hooks", "install", "--dry-run", "--command", "/opt/difflore/difflore", a.name)
			if !strings.Contains(out, "+") || !strings.Contains(out, "/opt/difflore/difflore enqueue --kind "+a.name+"."+a.events[0]) {
				t.Errorf("dry run shows no change:\n%s", out)
			}
			if !bytes.Equal(read(), original) || len(backups(t, path)) != 0 {
				t.Fatalf("dry run changed the file or made a backup")
			}

			mustCLI(t, "hooks", "install", "--command", "/opt/difflore/difflore", a.name)
			installed := read()
			doc, err := parseJSON(installed)
			if err != nil {
				t.Fatalf("installed file is not JSON: %v\n%s", err, installed)
			}
			events, programs := a.wiredEvents(doc)
			if !sameSet(events, a.events) || !slices.Equal(programs, []string{"/opt/difflore/difflore"}) {
				t.Errorf("wired %v running %v, want every event running /opt/difflore/difflore", events, programs)
			}
			checkUserSettingsKept(t, a, original, installed, doc)
			checkBackup(t, path, original)

			// A second install changes nothing.
			out = mustCLI(t, "hooks", "install", "--command", "/opt/difflore/difflore", a.name)
			if !strings.Contains(out, "nothing changed") || !bytes.Equal(read(), installed) || len(backups(t, path)) != 1 {
				t.Errorf("second install changed the file or made a backup: %s", out)
			}

			// The binary moved: the entries are replaced, not added to.
			mustCLI(t, "hooks", "install", "--command", "/usr/local/bin/difflore", a.name)
			moved := read()
			doc, _ = parseJSON(moved)
			events, programs = a.wiredEvents(doc)
			if !sameSet(events, a.events) || !slices.Equal(programs, []string{"/usr/local/bin/difflore"}) {
				t.Errorf("after the move: wired %v running %v, want every event running only /usr/local/bin/difflore", events, programs)
			}
			checkOneHookPerEvent(t, a, doc)

			// Uninstall gives back the file as it was.
			mustCLI(t, "hooks", "uninstall", "--dry-run", a.name)
			if !bytes.Equal(read(), moved) {
				t.Fatalf("uninstall --dry-run changed the file")
			}
			out = mustCLI(t, "hooks", "uninstall", a.name)
			if !strings.Contains(out, "removed") || !jsonEqual(t, read(), original) {
				t.Errorf("after uninstall (%s):\n%s\nwant, as before install:\n%s", out, read(), original)
			}
			out = mustCLI(t, "hooks", "uninstall", a.name)
			if !strings.Contains(out, "nothing changed") {
				t.Errorf("second uninstall: %s", out)
			}
		})
	}
}

// checkUserSettingsKept checks that every key and hook of the user's in
// original is still in the installed file, first, and that its indentation
// is kept.
func checkUserSettingsKept(t *testing.T, a agentSpec, original, installed []byte, doc *jsonValue) {
	t.Helper()
	// Every key and hook of the user's is still there, first.
	orig, _ := parseJSON(original)
	for i, m := range orig.members {
		if m.key != doc.members[i].key {
			t.Errorf("key %d is %q, was %q: keys reordered", i, doc.members[i].key, m.key)
		}
		if m.key == "hooks" || a.topLevel && m.value.kind == '[' {
			continue
		}
		if !m.value.equal(doc.members[i].value) {
			t.Errorf("%s changed", m.key)
		}
	}
	for _, m := range a.hooksObject(orig).members {
		if m.value.kind != '[' {
			continue
		}
		was := m.value.elems[0]
		if now := a.hooksObject(doc).get(m.key).elems[0]; !was.equal(now) {
			t.Errorf("the user's hook on %s changed or moved:\n%s", m.key, encodeJSON(now, "  "))
		}
	}
	indented := "\n    \"hooks\": {"
	if a.topLevel {
		indented = "\n    \"" + orig.members[0].key + "\": "
	}
	if !bytes.Contains(installed, []byte(indented)) {
		t.Errorf("indentation not kept:\n%.300s", installed)
	}
}

// checkBackup checks that an install kept the settings file's mode (0640
// in the test) and left one backup, which holds the file as it was.
func checkBackup(t *testing.T, path string, original []byte) {
	t.Helper()
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("mode after install: %v %v, want 0640", fi.Mode(), err)
		}
	}
	bk := backups(t, path)
	if len(bk) != 1 {
		t.Fatalf("backups %v, want one", bk)
	}
	if b, _ := os.ReadFile(bk[0]); !bytes.Equal(b, original) {
		t.Errorf("backup %s does not hold the file as it was", bk[0])
	}
}

// checkOneHookPerEvent checks that each of the agent's events runs
// difflore once.
func checkOneHookPerEvent(t *testing.T, a agentSpec, doc *jsonValue) {
	t.Helper()
	for _, e := range a.events {
		count := 0
		a.eachHook(a.hooksObject(doc).get(e), func(h *jsonValue) {
			if a.isOurHook(h) {
				count++
			}
		})
		if count != 1 {
			t.Errorf("%s has %d difflore hooks, want 1", e, count)
		}
	}
}

// TestHooksInstallFreshFile installs where the agent has no settings file
// yet, and uninstalls: the file install made is gone again.
func TestHooksInstallFreshFile(t *testing.T) {
	testHome(t)
	for _, a := range agents {
		if a.custom != nil {
			continue // TestClineInstall
		}
		t.Run(a.name, func(t *testing.T) {
			setUserHome(t)
			path, _ := a.settingsPath(os.Getenv, "")
			out := mustCLI(t, "hooks", "install", "--command", "difflore", a.name)
			if !strings.Contains(out, "installed") {
				t.Errorf("install: %s", out)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			printed := mustCLI(t, "hooks", "print", "--command", "difflore", a.name)
			if string(data) != printed {
				t.Errorf("installed file differs from what print shows:\n%s\nprint:\n%s", data, printed)
			}
			if len(backups(t, path)) != 0 {
				t.Errorf("a backup of a file that did not exist")
			}
			mustCLI(t, "hooks", "uninstall", a.name)
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after uninstall: %s is there (%v), want it gone as before install", path, err)
			}
		})
	}
}

// TestHooksInstallProject writes the project's settings file, not the
// user's.
func TestHooksInstallProject(t *testing.T) {
	testHome(t)
	userHome := setUserHome(t)
	project := t.TempDir()
	want := map[string]string{
		"claude": filepath.Join(".claude", "settings.local.json"),
		"codex":  filepath.Join(".codex", "hooks.json"),
		"cursor": filepath.Join(".cursor", "hooks.json"),
		"gemini": filepath.Join(".gemini", "settings.json"),
		// Copilot CLI reads a repository's .github/hooks/*.json.
		"copilot":  filepath.Join(".github", "hooks", "difflore.json"),
		"qwen":     filepath.Join(".qwen", "settings.json"),
		"droid":    filepath.Join(".factory", "hooks.json"),
		"cline":    filepath.Join(".clinerules", "hooks", "TaskStart"),
		"augment":  filepath.Join(".augment", "difflore-hook.sh"),
		"windsurf": filepath.Join(".windsurf", "hooks.json"),
		"kiro":     filepath.Join(".kiro", "hooks", "difflore-promptSubmit.kiro.hook"),
		"opencode": filepath.Join(".opencode", "plugins", "difflore.js"),
		"kilo":     filepath.Join(".kilo", "plugins", "difflore.js"),
		"pi":       filepath.Join(".pi", "extensions", "difflore.ts"),
	}
	if len(want) != len(agents) {
		t.Fatalf("want names %d agents' project files, the table has %d agents", len(want), len(agents))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		mustCLI(t, "hooks", "install", "--project", project, "--command", exe, a.name)
		if _, err := os.Stat(filepath.Join(project, want[a.name])); err != nil {
			t.Errorf("%s: %v", a.name, err)
		}
		// Codex runs no project hook it has not been told to trust.
		out, _, code := cli(t, "", "hooks", "status", "--project", project, a.name)
		if wantCode := map[bool]int{true: 1}[a.name == "codex"]; code != wantCode || !strings.Contains(out, "wired, ") {
			t.Errorf("%s: status --project: exit %d, want %d\n%s", a.name, code, wantCode, out)
		}
	}
	if entries, _ := os.ReadDir(userHome); len(entries) != 0 {
		t.Errorf("install --project wrote into the user's home: %v", entries)
	}
}

// TestHooksInstallRefusesMalformed checks that a settings file that is not
// JSON, or not of the shape hooks need, is refused with an error that says
// where, and left untouched, by install, uninstall and status alike.
func TestHooksInstallRefusesMalformed(t *testing.T) {
	testHome(t)
	tests := []struct{ name, content, wantErr string }{
		{"truncated", "{\n  \"model\": \"opus\",\n  \"hooks\": {\n", "unexpected end"},
		{"syntax error", "{\n  \"model\": \"opus\"\n  \"x\": 1\n}\n", "line 3"},
		{"two values", "{} {}\n", "after top-level value"},
		{"not an object", "[1, 2]\n", "not a JSON object"},
		{"hooks not an object", `{"hooks": []}`, `"hooks" is not an object`},
		{"event not an array", `{"hooks": {"SessionStart": {"command": "x"}}}`, "hooks.SessionStart is not an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setUserHome(t)
			a, _ := findAgent("claude")
			path, _ := a.settingsPath(os.Getenv, "")
			os.MkdirAll(filepath.Dir(path), 0o700)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := cli(t, "", "hooks", "install", "claude")
			if code != 1 || !strings.Contains(errOut, tt.wantErr) || !strings.Contains(errOut, "left as it is") {
				t.Errorf("install: exit %d, stderr %q; want 1 and an error naming %q", code, errOut, tt.wantErr)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content || len(backups(t, path)) != 0 {
				t.Errorf("install touched the file: %q", b)
			}
			if !strings.Contains(tt.name, "not an") && !strings.Contains(tt.name, "hooks") {
				if _, _, code := cli(t, "", "hooks", "uninstall", "claude"); code != 1 {
					t.Errorf("uninstall: exit %d, want 1", code)
				}
				if _, _, code := cli(t, "", "hooks", "status", "claude"); code != 1 {
					t.Errorf("status: exit %d, want 1", code)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("the file changed: %q", b)
			}
		})
	}
}

// TestHooksStatus checks status's verdicts and exit codes: not wired and
// wired to an existing program exit 0; a hook that runs a program that
// does not exist exits 1, as does one of several agents in that state.
func TestHooksStatus(t *testing.T) {
	testHome(t)
	setUserHome(t)
	exe := filepath.Join(t.TempDir(), "difflore")
	if err := os.WriteFile(exe, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}

	// Kiro's hooks are per workspace: without --project, status says so.
	out, _, code := cli(t, "", "hooks", "status")
	if code != 0 || strings.Count(out, "not wired")+strings.Count(out, "per workspace") != len(agents) {
		t.Errorf("nothing installed: exit %d\n%s", code, out)
	}

	mustCLI(t, "hooks", "install", "--command", exe, "claude")
	out, _, code = cli(t, "", "hooks", "status", "claude")
	if code != 0 || !strings.Contains(out, "wired, 29 of 29 events") || !strings.Contains(filepath.FromSlash(out), "runs "+exe) {
		t.Errorf("installed: exit %d\n%s", code, out)
	}

	// A partly wired agent, as after an upgrade that wires more events.
	a, _ := findAgent("claude")
	path, _ := a.settingsPath(os.Getenv, "")
	data, _ := os.ReadFile(path)
	doc, _ := parseJSON(data)
	doc.get("hooks").remove("SessionEnd")
	os.WriteFile(path, encodeJSON(doc, "  "), 0o600)
	out, _, code = cli(t, "", "hooks", "status", "claude")
	if code != 0 || !strings.Contains(out, "partly wired, 28 of 29 events") {
		t.Errorf("partly wired: exit %d\n%s", code, out)
	}

	// The program went away: every event of the agent is lost.
	mustCLI(t, "hooks", "install", "--command", exe+"-gone", "gemini")
	out, errOut, code := cli(t, "", "hooks", "status")
	if code != 1 || !strings.Contains(out, exe+"-gone, which does not exist") || !strings.Contains(errOut, "gemini") {
		t.Errorf("missing program: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if _, _, code := cli(t, "", "hooks", "status", "claude"); code != 0 {
		t.Errorf("status claude with gemini broken: exit %d, want 0", code)
	}

	if _, _, code := cli(t, "", "hooks", "status", "vim"); code != 2 {
		t.Errorf("unknown agent: exit %d, want 2", code)
	}
}

// TestHooksInstallThroughSymlink installs into a settings file that is a
// symlink into a dotfiles folder, as dotfiles managers make them: the link
// stays a link, and the file it leads to gets the hooks.
func TestHooksInstallThroughSymlink(t *testing.T) {
	testHome(t)
	setUserHome(t)
	a, _ := findAgent("claude")
	path, _ := a.settingsPath(os.Getenv, "")
	dotfiles := filepath.Join(t.TempDir(), "dotfiles")
	os.MkdirAll(dotfiles, 0o700)
	os.MkdirAll(filepath.Dir(path), 0o700)
	target := filepath.Join(dotfiles, "claude-settings.json")
	if err := os.WriteFile(target, []byte(agentSettings["claude"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Skipf("cannot make a symlink here: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Skipf("a symlink made here does not read back as one (Wine): %v", err)
	}
	mustCLI(t, "hooks", "install", "--command", "difflore", "claude")
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the settings file is no longer a symlink: %v %v", fi.Mode(), err)
	}
	data, _ := os.ReadFile(target)
	doc, err := parseJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if events, _ := a.wiredEvents(doc); len(events) != len(a.events) {
		t.Errorf("the link's target has %d events wired, want %d", len(events), len(a.events))
	}
	if bk := backups(t, path); len(bk) != 1 {
		t.Errorf("backups of the link's target: %v, want one", bk)
	}
	if entries, _ := os.ReadDir(dotfiles); len(entries) != 1 {
		t.Errorf("the dotfiles folder holds %d files, want only the settings", len(entries))
	}
}

// TestShellWord checks how a program path is written for the agents'
// shells, and that status reads it back.
func TestShellWord(t *testing.T) {
	tests := []struct {
		path           string
		windows, slash bool
		want           string
	}{
		{"/usr/local/bin/difflore", false, false, "/usr/local/bin/difflore"},
		{"/home/me/go/bin/difflore", false, true, "/home/me/go/bin/difflore"},
		{"/opt/my tools/difflore", false, false, "'/opt/my tools/difflore'"},
		{"/opt/it's/difflore", false, false, `'/opt/it'\''s/difflore'`},
		{"/opt/$HOME/`x`/difflore", false, false, "'/opt/$HOME/`x`/difflore'"},
		{`C:\Users\me\go\bin\difflore.exe`, true, false, `C:\Users\me\go\bin\difflore.exe`},
		{`C:\Users\me\go\bin\difflore.exe`, true, true, `C:/Users/me/go/bin/difflore.exe`},
	}
	for _, tt := range tests {
		got, err := shellWord(tt.path, tt.windows, tt.slash)
		if err != nil || got != tt.want {
			t.Errorf("shellWord(%q, windows %v, slashes %v) = %q, %v; want %q", tt.path, tt.windows, tt.slash, got, err, tt.want)
		}
		if back := commandProgram(got + " enqueue --kind claude.Stop"); !tt.windows && back != tt.path {
			t.Errorf("commandProgram(%q) = %q, want %q", got, back, tt.path)
		}
	}
	if runtime.GOOS != "windows" {
		// Only Windows gives short names; elsewhere such a path is refused.
		if _, err := shellWord(`C:\Program Files\difflore.exe`, true, false); err == nil {
			t.Errorf("a Windows path with a space and no short name was accepted")
		}
	}
}

// TestHooksUninstallKeepsCodexTrustIndex: Codex keys the trust a user gave
// a hook by its group's index in the event's list. Uninstall must not move
// a group of the user's that came after difflore's, or Codex would
// silently stop running it; the other agents get the group removed.
func TestHooksUninstallKeepsCodexTrustIndex(t *testing.T) {
	testHome(t)
	for _, name := range []string{"codex", "claude"} {
		t.Run(name, func(t *testing.T) {
			setUserHome(t)
			a, _ := findAgent(name)
			path, _ := a.settingsPath(os.Getenv, "")
			os.MkdirAll(filepath.Dir(path), 0o700)
			user := `{"type": "command", "command": "before.sh"}`
			os.WriteFile(path, []byte(`{"hooks": {"Stop": [{"hooks": [`+user+`]}]}}`), 0o600)
			mustCLI(t, "hooks", "install", "--command", "difflore", name)
			// The user adds a hook of their own after difflore's.
			data, _ := os.ReadFile(path)
			doc, _ := parseJSON(data)
			later, _ := parseJSON([]byte(`{"hooks": [{"type": "command", "command": "after.sh"}]}`))
			stop := doc.get("hooks").get("Stop")
			stop.elems = append(stop.elems, later)
			os.WriteFile(path, encodeJSON(doc, "  "), 0o600)

			mustCLI(t, "hooks", "uninstall", name)
			data, _ = os.ReadFile(path)
			doc, _ = parseJSON(data)
			var commands []string
			for _, g := range doc.get("hooks").get("Stop").elems {
				cmd := "(empty)"
				if hs := g.get("hooks"); len(hs.elems) > 0 {
					cmd, _ = hs.elems[0].get("command").str()
				}
				commands = append(commands, cmd)
			}
			want := []string{"before.sh", "after.sh"}
			if name == "codex" {
				want = []string{"before.sh", "(empty)", "after.sh"}
			}
			if !slices.Equal(commands, want) {
				t.Errorf("Stop groups after uninstall: %v, want %v", commands, want)
			}
		})
	}
}

// TestHooksGeminiLeavesHooksConfig installs into Gemini settings where the
// user switched hooks off: install wires the hooks but leaves
// hooksConfig.enabled false and warns, status says no hook runs (exit 1),
// and uninstall gives the file back as it was, still switched off. Where
// hooksConfig is absent, install adds none: Gemini CLI 0.61.0 runs hooks
// by default.
func TestHooksGeminiLeavesHooksConfig(t *testing.T) {
	testHome(t)
	setUserHome(t)
	exe := filepath.Join(t.TempDir(), "difflore")
	if err := os.WriteFile(exe, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	g, _ := findAgent("gemini")
	path, _ := g.settingsPath(os.Getenv, "")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	enabled := func() string {
		t.Helper()
		data, _ := os.ReadFile(path)
		doc, err := parseJSON(data)
		if err != nil {
			t.Fatal(err)
		}
		if en := doc.get("hooksConfig").get("enabled"); en != nil {
			return string(en.raw)
		}
		return "absent"
	}

	mustCLI(t, "hooks", "install", "--command", exe, "gemini")
	if got := enabled(); got != "absent" {
		t.Errorf("install into a new file: hooksConfig.enabled %s, want absent", got)
	}
	mustCLI(t, "hooks", "uninstall", "gemini")

	original := []byte(`{
  "hooksConfig": {"enabled": false, "disabled": ["x"]},
  "hooks": {
    "AfterTool": [{"hooks": [{"type": "command", "name": "x", "command": "my-hook.sh"}]}]
  }
}
`)
	if err := os.WriteFile(path, original, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := cli(t, "", "hooks", "install", "--command", exe, "gemini")
	if code != 0 || !strings.Contains(errOut, "hooksConfig.enabled is false") {
		t.Errorf("install over enabled false: exit %d, want 0 and a warning; stderr:\n%s", code, errOut)
	}
	if got := enabled(); got != "false" {
		t.Errorf("after install: hooksConfig.enabled %s, want false", got)
	}
	data, _ := os.ReadFile(path)
	doc, _ := parseJSON(data)
	if events, _ := g.wiredEvents(doc); !sameSet(events, g.events) {
		t.Errorf("wired %v, want every event", events)
	}
	out, _, code := cli(t, "", "hooks", "status", "gemini")
	if code != 1 || !strings.Contains(out, "hooksConfig.enabled is false") {
		t.Errorf("status with hooks switched off: exit %d, want 1\n%s", code, out)
	}
	mustCLI(t, "hooks", "uninstall", "gemini")
	if got := enabled(); got != "false" {
		t.Errorf("after uninstall: hooksConfig.enabled %s, want false", got)
	}
	if data, _ := os.ReadFile(path); !jsonEqual(t, data, original) {
		t.Errorf("after uninstall:\n%s\nwant, as before install:\n%s", data, original)
	}
}

// TestCodexTrustHash checks the trust keys and hashes of difflore's hooks
// in a Codex hooks.json against those Codex 0.169.0 computes (its
// app-server's hooks/list): SessionEnd's timeout, a group after a user's,
// a matcher, and a status message with characters JSON may escape.
func TestCodexTrustHash(t *testing.T) {
	doc, err := parseJSON([]byte(`{"hooks":{
"SessionEnd":[{"hooks":[{"type":"command","command":"/opt/difflore/difflore enqueue --kind codex.SessionEnd","timeout":3}]}],
"Stop":[{"hooks":[{"type":"command","command":"notify-send done","timeout":1.5}]},{"hooks":[{"type":"command","command":"/opt/difflore/difflore enqueue --kind codex.Stop","timeout":10}]}],
"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"/opt/difflore/difflore enqueue --kind codex.PreToolUse","timeout":10,"statusMessage":"<log & go>"}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := findAgent("codex")
	// The key names hooks.json by its absolute path: on Windows,
	// "/tmp/h2g/hooks.json" is on the current drive. The hashes do not
	// depend on the path.
	path, err := filepath.Abs("/tmp/h2g/hooks.json")
	if err != nil {
		t.Fatal(err)
	}
	got := a.codexTrustEntries(path, doc)
	want := []codexTrust{
		{path + ":session_end:0:0", "sha256:a4973688f5fc044412bfef32a8d16882b8eb802185aec8185a18b30b0693b355"},
		{path + ":stop:1:0", "sha256:18c1a97e5ca7db643f08620fd5441196f6e7a148d7a531cc1abbedda1e895ba5"},
		{path + ":pre_tool_use:0:0", "sha256:1adb0b9f66a3921c1dc0cdc9db49fce2ffc492c8aa597b7d34cd5c2490ed11fc"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("trust entries:\n%v\nwant\n%v", got, want)
	}
}

// TestHooksCodexTrust checks that status counts the difflore hooks Codex
// trusts (config.toml under CODEX_HOME), failing while any is untrusted or
// trusted with a stale hash; that install --trust appends the trust of
// difflore's hooks, and only theirs, to config.toml, once, and updates a
// stale hash in place; and that uninstall takes that trust out again,
// leaving config.toml as it was.
func TestHooksCodexTrust(t *testing.T) {
	testHome(t)
	setUserHome(t)
	codexHome := t.TempDir()
	t.Setenv("CODEX_HOME", codexHome)
	exe := filepath.Join(t.TempDir(), "difflore")
	if err := os.WriteFile(exe, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	hooksPath := filepath.Join(codexHome, "hooks.json")
	configPath := filepath.Join(codexHome, "config.toml")
	if err := os.WriteFile(hooksPath, []byte(agentSettings["codex"]), 0o600); err != nil {
		t.Fatal(err)
	}
	userTrust := "[hooks.state." + strconv.Quote(hooksPath+":stop:0:0") + "]\ntrusted_hash = \"sha256:0000\"\n"
	original := []byte("# my settings\nmodel = \"o3\"\n\n[projects.\"/src/app\"]\ntrust_level = \"trusted\" # mine\n\n" + userTrust)
	if err := os.WriteFile(configPath, original, 0o600); err != nil {
		t.Fatal(err)
	}
	config := func() []byte {
		t.Helper()
		b, err := os.ReadFile(configPath)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	_, errOut, code := cli(t, "", "hooks", "install", "--command", exe, "codex")
	if code != 0 || !strings.Contains(errOut, "hooks install --trust codex") || !strings.Contains(errOut, "Hooks need review") {
		t.Errorf("install: exit %d, want 0 and how to trust; stderr:\n%s", code, errOut)
	}
	if !bytes.Equal(config(), original) {
		t.Errorf("install without --trust changed config.toml:\n%s", config())
	}
	if errOut := codexStatus(t, "untrusted", 1, "Codex trusts 0 of 14"); !strings.Contains(errOut, "--trust") {
		t.Errorf("status, untrusted: no hint to use --trust; stderr:\n%s", errOut)
	}

	mustCLI(t, "hooks", "install", "--trust", "--command", exe, "codex")
	trusted := config()
	if !bytes.HasPrefix(trusted, original) || bytes.Count(trusted, []byte("[hooks.state.")) != 15 {
		t.Errorf("install --trust did not append 14 trust entries:\n%s", trusted)
	}
	if !bytes.Contains(trusted, []byte(strconv.Quote(hooksPath+":stop:1:0"))) {
		t.Errorf("no trust for difflore's Stop hook, after the user's:\n%s", trusted)
	}
	if len(backups(t, configPath)) != 1 {
		t.Errorf("backups of config.toml: %v, want one", backups(t, configPath))
	}
	codexStatus(t, "trusted", 0, "Codex trusts 14 of 14")
	cli(t, "", "hooks", "install", "--trust", "--command", exe, "codex")
	if !bytes.Equal(config(), trusted) || len(backups(t, configPath)) != 1 {
		t.Errorf("second install --trust changed config.toml:\n%s", config())
	}

	// The program moved: the hooks' hashes change.
	moved := exe + "-2"
	if err := os.WriteFile(moved, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "hooks", "install", "--command", moved, "codex")
	codexStatus(t, "stale trust", 1, "Codex trusts 0 of 14", "14 changed since")
	mustCLI(t, "hooks", "install", "--trust", "--command", moved, "codex")
	if n := bytes.Count(config(), []byte("[hooks.state.")); n != 15 {
		t.Errorf("after trusting the moved hooks, %d trust entries, want 15:\n%s", n, config())
	}
	codexStatus(t, "trusted again", 0, "Codex trusts 14 of 14")

	mustCLI(t, "hooks", "uninstall", "codex")
	if !bytes.Equal(config(), original) {
		t.Errorf("after uninstall, config.toml:\n%s\nwant, as it was:\n%s", config(), original)
	}
}

// codexStatus runs 'hooks status codex' and checks its exit code and that
// its output says each of texts; it returns what went to stderr.
func codexStatus(t *testing.T, when string, wantCode int, texts ...string) string {
	t.Helper()
	out, errOut, code := cli(t, "", "hooks", "status", "codex")
	if code != wantCode {
		t.Errorf("status, %s: exit %d, want %d\nstdout: %s\nstderr: %s", when, code, wantCode, out, errOut)
	}
	for _, text := range texts {
		if !strings.Contains(out, text) {
			t.Errorf("status, %s: no %q in\n%s", when, text, out)
		}
	}
	return errOut
}

// TestHooksCodexTrustResolvesCodexHome: Codex 0.169.0 resolves symlinks in
// CODEX_HOME (not in ~/.codex) before it keys the trust of the hooks in
// its hooks.json, so the trust difflore writes, and the trust status
// checks, must name the folder the link leads to.
func TestHooksCodexTrustResolvesCodexHome(t *testing.T) {
	testHome(t)
	setUserHome(t)
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "codex-home")
	if err := os.Symlink(real, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Skipf("a symlink made here does not read back as one (Wine): %v", err)
	}
	real, _ = filepath.EvalSymlinks(real)
	t.Setenv("CODEX_HOME", link)
	mustCLI(t, "hooks", "install", "--trust", "--command", "/opt/difflore/difflore", "codex")
	config, err := os.ReadFile(filepath.Join(real, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "[hooks.state." + strconv.Quote(filepath.Join(real, "hooks.json")+":session_start:0:0") + "]"
	if !bytes.Contains(config, []byte(want)) {
		t.Errorf("config.toml has no %s:\n%.400s", want, config)
	}
}

// TestHooksInstallCodexTrustNote: install says how to trust the hooks only
// while Codex does not trust them all, not on an install that finds them
// installed and trusted.
func TestHooksInstallCodexTrustNote(t *testing.T) {
	testHome(t)
	setUserHome(t)
	mustCLI(t, "hooks", "install", "--trust", "--command", "/opt/difflore/difflore", "codex")
	out, errOut, code := cli(t, "", "hooks", "install", "--command", "/opt/difflore/difflore", "codex")
	if code != 0 || !strings.Contains(out, "nothing changed") || strings.Contains(errOut, "trust") {
		t.Errorf("install over trusted hooks: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// The program moved: Codex no longer trusts the changed hooks.
	_, errOut, _ = cli(t, "", "hooks", "install", "--command", "/usr/local/bin/difflore", "codex")
	if !strings.Contains(errOut, "Codex runs these hooks only once you trust them") {
		t.Errorf("install of changed hooks: no note on trust; stderr:\n%s", errOut)
	}
}

func TestHooksPrint(t *testing.T) {
	testHome(t)
	for _, a := range agents {
		if a.plugin != nil {
			continue // plugin agents: hooksplugin_test.go
		}
		t.Run(a.name, func(t *testing.T) {
			out := mustCLI(t, "hooks", "print", "--autostart", "--command", "/opt/difflore/difflore", a.name)
			if a.script != "" {
				for _, e := range a.events {
					if want := `"` + a.name + "." + e + `"`; !strings.Contains(out, want) {
						t.Errorf("output lacks %q:\n%s", want, out)
					}
				}
				return
			}
			if a.custom != nil {
				if a.name != "cline" {
					return // an agent of its own installer prints what its own tests check
				}
				for _, e := range a.events {
					if want := "exec /opt/difflore/difflore enqueue --kind " + a.name + "." + e + " --ensure-daemon\n"; !strings.Contains(out, want) {
						t.Errorf("output lacks %q:\n%s", want, out)
					}
				}
				return
			}
			doc, err := parseJSON([]byte(out))
			if err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			events, programs := a.wiredEvents(doc)
			if !slices.Equal(events, a.events) || !slices.Equal(programs, []string{"/opt/difflore/difflore"}) {
				t.Errorf("print wires %v running %v, want %v running /opt/difflore/difflore", events, programs, a.events)
			}
			for _, e := range a.events {
				if want := "/opt/difflore/difflore enqueue --kind " + a.name + "." + e + " --ensure-daemon"; !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	if _, _, code := cli(t, "", "hooks", "print", "vim"); code != 2 {
		t.Errorf("unknown agent: exit %d, want 2", code)
	}
}

// TestHooksInstallJSONC installs into settings files with comments, as
// Gemini CLI and VS Code read them, laid out by hand: every comment and
// every byte outside the "hooks" key stays as it was, and uninstall gives
// back the file byte for byte.
func TestHooksInstallJSONC(t *testing.T) {
	testHome(t)
	exe := filepath.Join(t.TempDir(), "difflore")
	for _, tt := range []struct{ agent, content string }{
		{"gemini", `// Gemini CLI settings, kept by hand.
{
  /* the model,
     on one line */
  "model": {"name": "gemini-2.5-pro"},   // inline comment
  "theme":"Dracula",
  "numbers": [1,2,  3] // the last member
}
`},
		{"gemini", "{\n\t\"a\": 1, // trailing comma next\n\t\"b\": [\n\t\t2,\n\t],\n}\n"},
		{"cursor", "{\n  // cursor's own\n  \"version\": 1, \"x\": true\n}\n"},
		{"claude", "{\n  \"hooks\": {\n    // the user's hook\n    \"Notification\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"notify.sh\"}]}]\n  }, // hooks\n  \"model\": \"opus\" /* last */\n}\n"},
	} {
		t.Run(tt.agent, func(t *testing.T) {
			setUserHome(t)
			a, _ := findAgent(tt.agent)
			path, _ := a.settingsPath(os.Getenv, "")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			mustCLI(t, "hooks", "install", "--command", exe, tt.agent)
			installed, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every line of the original outside "hooks" is still there, in
			// its order, as it was written.
			rest := strings.ReplaceAll(string(installed), ",", "")
			inHooks := false
			for _, line := range strings.Split(strings.TrimSuffix(tt.content, "\n"), "\n") {
				if strings.Contains(line, `"hooks": {`) {
					inHooks = true
				}
				if inHooks {
					inHooks = !strings.HasPrefix(line, "  }")
					continue
				}
				// A comma comes after the member that was the last: commas
				// are left out of the comparison.
				line = strings.ReplaceAll(line, ",", "")
				i := strings.Index(rest, line)
				if i < 0 {
					t.Errorf("the line %q is gone or moved:\n%s", line, installed)
					continue
				}
				rest = rest[i+len(line):]
			}
			out, _, _ := cli(t, "", "hooks", "status", tt.agent)
			if !strings.Contains(out, fmt.Sprintf("wired, %d of %d", len(a.events), len(a.events))) {
				t.Errorf("status after install: %s\n%s", out, installed)
			}
			if tt.agent == "claude" && !strings.Contains(string(installed), "notify.sh") {
				t.Errorf("the user's hook is gone:\n%s", installed)
			}
			mustCLI(t, "hooks", "uninstall", tt.agent)
			if got, _ := os.ReadFile(path); tt.agent != "claude" && string(got) != tt.content {
				t.Errorf("uninstall did not give back the file:\n%s\nwant:\n%s", got, tt.content)
			}
		})
	}
}

// installWithPause runs 'hooks install' in this process, in e, with pause as
// the settings edit's pause point, and returns its error.
func installWithPause(e *testEnv, pause func(step string), args ...string) error {
	e.t.Helper()
	var out, errb bytes.Buffer
	cfg := loadConfig(e.getenv, strings.NewReader(""), &out, &errb)
	cfg.settingsPause = pause
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return runConfig(ctx, cfg, append([]string{"hooks", "install"}, args...))
}

// agentSave rewrites a settings file as an agent saves its own: read,
// change one key of its own, written whole to a new file renamed over it.
// It reads as Node.js does, letting others rename over the file meanwhile
// (on Windows, a plain read would make their rename fail).
func agentSave(path string, n int) error {
	data, err := readSettingsData(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%w: %s", err, data)
	}
	doc["agentSaves"] = n
	data, err = json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.agent%d", path, n)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// agentSaves is the count an agentSave wrote last in the file at path.
func agentSaves(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ AgentSaves int }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return doc.AgentSaves
}

// installAgentSavesOnce writes Claude's settings as the user had them,
// then installs while the agent saves them once, at step of the edit, and
// checks that the agent's save, the user's key and the hooks are all in
// the file. It returns the file and the program the hooks name.
func installAgentSavesOnce(t *testing.T, step string) (e *testEnv, path, exe string) {
	t.Helper()
	e = newTestEnv(t)
	e.setUserHome()
	a, _ := findAgent("claude")
	path, _ = a.settingsPath(e.getenv, "")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"model": "opus"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(t.TempDir(), "difflore")
	saves := 0
	saveOnce := func(at string) {
		if at == step && saves == 0 {
			saves++
			if err := agentSave(path, saves); err != nil {
				t.Error(err)
			}
		}
	}
	if err := installWithPause(e, saveOnce, "--command", exe, "claude"); err != nil {
		t.Fatalf("install: %v", err)
	}
	if saves != 1 {
		t.Fatalf("the agent saved %d times, want 1: the pause point was not reached", saves)
	}
	if got := agentSaves(t, path); got != 1 {
		t.Errorf("after install, the agent's save %d is in the file, want 1: install threw it away", got)
	}
	// The program's path as the hook command names it.
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), filepath.ToSlash(exe)) || !strings.Contains(string(data), "opus") {
		t.Errorf("the hooks or the user's key are missing:\n%s", data)
	}
	return e, path, exe
}

// TestHooksInstallAgentSavesMeanwhile makes the agent save its settings at
// the worst moment: after install wrote the new file and before it
// replaces the old one. Install must not throw the agent's save away: it
// merges again into what the agent saved; and when the agent saves at that
// moment every time, it gives up and says so, leaving the agent's file.
func TestHooksInstallAgentSavesMeanwhile(t *testing.T) {
	t.Parallel()
	e, path, exe := installAgentSavesOnce(t, stepSettingsWritten)
	saves := 1
	saveAlways := func(step string) {
		if step == stepSettingsWritten {
			saves++
			if err := agentSave(path, saves); err != nil {
				t.Error(err)
			}
		}
	}
	err := installWithPause(e, saveAlways, "--command", exe+"2", "claude")
	if err == nil || !strings.Contains(err.Error(), "kept changing") {
		t.Errorf("install with the agent saving every time: %v; want an error that says the file kept changing", err)
	}
	if got := agentSaves(t, path); got != saves {
		t.Errorf("after install, the agent's save %d is in the file, want its last, %d", got, saves)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), filepath.ToSlash(exe+"2")) {
		t.Errorf("install wrote although it reported it could not:\n%s", data)
	}
}

// TestHooksInstallAgentSavesAfterCheck makes the agent save its settings
// in the last moment of an install: after install's final look at the file
// and before the new file takes its place, the moment that
// TestHooksInstallRacesAgent can only hit by chance. Where the system can
// swap two files in one step (Linux), install swaps, sees that what it
// took out is not the file it merged into, swaps the agent's save back and
// merges again; elsewhere the save is lost, and the test says so.
func TestHooksInstallAgentSavesAfterCheck(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux swaps two files in one step (renameat2 RENAME_EXCHANGE); elsewhere a save in this moment is lost")
	}
	t.Parallel()
	e, path, exe := installAgentSavesOnce(t, stepSettingsChecked)
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the settings folder holds %v, want only the settings file", names)
	}

	// A settings file that did not exist, created by the agent in that
	// moment, is not replaced either.
	os.Remove(path)
	saves := 0
	if err := installWithPause(e, saveOnceNew(t, path, &saves), "--command", exe, "claude"); err != nil {
		t.Fatalf("install: %v", err)
	}
	if saves != 1 {
		t.Fatalf("the agent saved %d times, want 1: the pause point was not reached", saves)
	}
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), `"agentSaves"`) || !strings.Contains(string(data), filepath.ToSlash(exe)) {
		t.Errorf("install replaced the file the agent created meanwhile, or left out its hooks:\n%s", data)
	}
}

// saveOnceNew is a pause that, at the last step of the first try, creates
// the settings file as an agent does on its first save.
func saveOnceNew(t *testing.T, path string, saves *int) func(string) {
	return func(step string) {
		if step != stepSettingsChecked || *saves > 0 {
			return
		}
		*saves++
		if err := os.WriteFile(path+".agent", []byte(`{"agentSaves": 1}`), 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(path+".agent", path); err != nil {
			t.Error(err)
		}
	}
}

// TestHooksInstallRacesAgent runs install many times while an agent saves
// its settings about every millisecond, each save read from the file and
// written whole, as agents do. Every save must find the one before it in
// the file: an install that replaced the file with a merge into an older
// read would have thrown a save away. Install may instead report that the
// file kept changing. Install reads the file again just before it replaces
// it; with a plain rename, a save that lands between that read and the
// rename is lost, a moment of a system call or two that a loaded machine
// hits: CI's unprivileged run lost 8 of 60 so. On Linux the replacement
// is a swap that gives back what it took out (settingsFile.replace), and
// a save is lost only if the agent also reads the edited file in the
// moment between two swaps (0 of 480 installs on a loaded machine): the
// test allows one. Elsewhere it allows trials/10, and
// TestHooksInstallAgentSavesMeanwhile checks the merge again exactly.
func TestHooksInstallRacesAgent(t *testing.T) {
	if runtime.GOOS == "windows" {
		// Under Wine, a rename over the file fails (access denied) while
		// another process reads or replaces it, difflore's and the test
		// agent's alike, so the race there is another one;
		// TestHooksInstallAgentSavesMeanwhile covers the merge again.
		t.Skip("renames over a file in use fail on Windows (Wine): a race of its own")
	}
	t.Parallel()
	e := newTestEnv(t)
	e.setUserHome()
	a, _ := findAgent("claude")
	path, _ := a.settingsPath(e.getenv, "")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"agentSaves": 0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var lost []string
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			data, err := readSettingsData(path)
			var doc struct{ AgentSaves int }
			if err == nil {
				err = json.Unmarshal(data, &doc)
			}
			if err != nil {
				lost = append(lost, err.Error())
				return
			}
			if doc.AgentSaves != n-1 {
				lost = append(lost, fmt.Sprintf("save %d found save %d in the file", n, doc.AgentSaves))
			}
			if err := agentSave(path, n); err != nil {
				lost = append(lost, err.Error())
				return
			}
		}
	}()
	const trials = 60
	gaveUp := 0
	for i := range trials {
		err := installWithPause(e, nil, "--command", filepath.Join(t.TempDir(), fmt.Sprintf("difflore%d", i)), "claude")
		if err != nil {
			if !strings.Contains(err.Error(), "kept changing") {
				t.Errorf("install %d: %v", i, err)
			}
			gaveUp++
		}
	}
	close(stop)
	<-done
	t.Logf("%d installs, %d gave up because the file kept changing; %d of the agent's saves lost: %s", trials, gaveUp, len(lost), strings.Join(lost, "; "))
	allowed := trials / 10
	if runtime.GOOS == "linux" {
		allowed = 1
	}
	if len(lost) > allowed {
		t.Errorf("%d of the agent's saves were thrown away by %d installs: %s", len(lost), trials, strings.Join(lost, "; "))
	}
}
