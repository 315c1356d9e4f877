package agents

import (
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
