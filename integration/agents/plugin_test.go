package agents

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The versions the plugin files were written for and are tested against.
const (
	openCodeVersion = "opencode-ai@1.18.33"
	kiloVersion     = "@kilocode/cli@7.7.7"
	piVersion       = "@mariozechner/pi-coding-agent@0.73.1"
)

// checkPluginRun checks the events an agent handed over in one run: each
// of want arrived, under the agent's own kind, in that order, and every
// event that names a session names the same one.
func checkPluginRun(t *testing.T, agent string, events []pluginEvent, want []string) {
	t.Helper()
	got := pluginKinds(events)
	t.Logf("%s handed over: %s", agent, strings.Join(got, " "))
	i := 0
	for _, k := range got {
		if !strings.HasPrefix(k, agent+".") {
			t.Errorf("an event of kind %s, not %s.*", k, agent)
		}
		if i < len(want) && k == agent+"."+want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s: missing %s.%s (in order %v)", agent, agent, want[i], want)
	}
	session := ""
	for _, e := range events {
		s := e.sessionID()
		if s == "" {
			t.Errorf("%s: no sessionID in %s", e.Kind, e.Payload)
			continue
		}
		if session == "" {
			session = s
		} else if s != session {
			t.Errorf("%s: session %q, the run's first event had %q", e.Kind, s, session)
		}
	}
}

// pluginOpenCodeRun runs an agent built from OpenCode (OpenCode itself, Kilo)
// with the plugin difflore installs, its one model on a loopback endpoint
// that refuses it as a missing key would.
func pluginOpenCodeRun(t *testing.T, agent, spec, bin, configFile string) {
	difflore := pluginDifflore(t)
	program := pluginNpmInstall(t, spec, bin)
	h := newPluginHome(t, difflore)
	h.writeFile(t, configFile, pluginOpenCodeConfig(pluginNotLoggedIn(t)))
	t.Log(h.runDifflore(t, "hooks", "install", agent))
	if status := h.runDifflore(t, "hooks", "status", agent); !strings.Contains(status, "wired, ") {
		t.Fatalf("hooks status %s: %s", agent, status)
	}
	out := h.run(t, 5*time.Minute, program, "run", "hi")
	events := h.drained(t)
	if len(events) == 0 {
		t.Fatalf("%s handed over nothing; it printed:\n%s", agent, out)
	}
	// Before its model call OpenCode fires session.created, then
	// chat.message (the prompt) and message.updated (the user's
	// message); the refused call ends the session with session.error
	// and session.idle, right before the run exits: the events an
	// asynchronous hand-over loses.
	checkPluginRun(t, agent, events, []string{"session.created", "chat.message", "message.updated", "session.error", "session.idle"})
	last := events[len(events)-1].Kind
	if !slices.Contains([]string{agent + ".session.idle", agent + ".message.updated"}, last) {
		t.Errorf("the last event handed over is %s, not the session's end", last)
	}
}

// TestOpenCodePlugin runs OpenCode 1.18.33 from npm, not logged in.
func TestOpenCodePlugin(t *testing.T) {
	pluginOpenCodeRun(t, "opencode", openCodeVersion, "opencode", ".config/opencode/opencode.json")
}

// TestKiloPlugin runs Kilo CLI 7.7.7 from npm, not logged in.
func TestKiloPlugin(t *testing.T) {
	pluginOpenCodeRun(t, "kilo", kiloVersion, "kilo", ".config/kilo/kilo.json")
}

// TestPiExtension runs Pi 0.73.1 from npm with no key at all. Pi fires
// session_start and input (the prompt) before it looks for the model's
// key; finding none it ends the run, with session_shutdown.
func TestPiExtension(t *testing.T) {
	difflore := pluginDifflore(t)
	program := pluginNpmInstall(t, piVersion, "pi")
	h := newPluginHome(t, difflore)
	t.Log(h.runDifflore(t, "hooks", "install", "pi"))
	out := h.run(t, 3*time.Minute, program, "-p", "hi")
	events := h.drained(t)
	if len(events) == 0 {
		t.Fatalf("pi handed over nothing; it printed:\n%s", out)
	}
	checkPluginRun(t, "pi", events, []string{"session_start", "input", "session_shutdown"})
}

// asyncHandOver is the hand-over of plugins/opencode.js made asynchronous,
// as a plugin that awaits anything before it spawns enqueue is: the
// handler returns at once and the spawn happens a second later.
const asyncHandOver = `    setTimeout(() => {
      const child = spawn(program, args, { stdio: ["pipe", "ignore", "ignore"] });
      child.on("error", () => {});
      child.stdin.end(JSON.stringify(payload));
    }, 1000);`

// TestOpenCodeAsyncHandOverLosesSessionEnd is the control for
// TestOpenCodePlugin: the same run, with the plugin's hand-over made
// asynchronous, loses the session's end (session.error, session.idle),
// because OpenCode exits without waiting for a plugin's pending work. It
// shows why difflore's plugin hands over synchronously, and that
// TestOpenCodePlugin would see the loss.
func TestOpenCodeAsyncHandOverLosesSessionEnd(t *testing.T) {
	difflore := pluginDifflore(t)
	program := pluginNpmInstall(t, openCodeVersion, "opencode")
	h := newPluginHome(t, difflore)
	h.writeFile(t, ".config/opencode/opencode.json", pluginOpenCodeConfig(pluginNotLoggedIn(t)))
	h.runDifflore(t, "hooks", "install", "opencode")
	path := filepath.Join(h.user, ".config", "opencode", "plugins", "difflore.js")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sync := regexp.MustCompile(`(?s)    spawnSync\(program, args, \{.*?\n    \}\);`)
	if !sync.Match(data) {
		t.Fatalf("no spawnSync call in %s:\n%s", path, data)
	}
	data = sync.ReplaceAll(data, []byte(asyncHandOver))
	data = bytes.Replace(data, []byte("import { spawnSync }"), []byte("import { spawn }"), 1)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	h.run(t, 5*time.Minute, program, "run", "hi")
	got := pluginKinds(h.drained(t))
	t.Logf("with an asynchronous hand-over opencode handed over: %s", strings.Join(got, " "))
	if !slices.Contains(got, "opencode.session.created") {
		t.Fatalf("the asynchronous plugin handed over nothing: it did not load")
	}
	for _, k := range []string{"opencode.session.error", "opencode.session.idle"} {
		if slices.Contains(got, k) {
			t.Errorf("%s arrived with an asynchronous hand-over: OpenCode now waits for a plugin's pending work", k)
		}
	}
}
