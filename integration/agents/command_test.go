package agents

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The agents below are installed from npm at pinned versions and run not
// logged in, on a fresh account whose PATH does not hold difflore, with
// the hooks 'difflore hooks install' wrote: the events each fires before
// its model call (which fails: no login, no key, or a provider on a
// closed loopback port) must arrive at a loopback endpoint under the
// agent's own name, each with its session. Which events fire not logged
// in is what the agents' probe of 2026-12-07 found
// (../shared/fixtures/hooks/README.md).

// TestCopilotCommandHooks: Copilot CLI 1.0.102 in custom-provider mode
// (COPILOT_PROVIDER_BASE_URL, which needs no GitHub login) with the
// provider on a closed port fires sessionStart, userPromptSubmitted and
// userPromptTransformed before its model call, errorOccurred when the call
// fails and sessionEnd; camelCase payloads with sessionId.
func TestCopilotCommandHooks(t *testing.T) {
	commandNeeds(t)
	t.Parallel()
	npm := commandNpm(t, "@github/copilot@1.0.102")
	u := newCommandUser(t)
	u.run(t, "hooks", "install", "copilot")
	u.agent(t, 3*time.Minute, []string{
		"COPILOT_PROVIDER_BASE_URL=http://" + closedPort(t) + "/v1",
		"COPILOT_MODEL=gpt-5.4",
	}, filepath.Join(npm, "node_modules", ".bin", "copilot"), "-p", "say hi")
	checkArrived(t, "copilot", "sessionId", u.delivered(t),
		"sessionStart", "userPromptSubmitted", "userPromptTransformed", "errorOccurred", "sessionEnd")
}

// TestQwenCommandHooks: Qwen Code 0.24.4 with no key at all fires
// SessionStart and InstructionsLoaded, then stops: no auth type is set.
// Its package asks for Node.js 22 and runs on 20.
func TestQwenCommandHooks(t *testing.T) {
	commandNeeds(t)
	t.Parallel()
	npm := commandNpm(t, "@qwen-code/qwen-code@0.24.4")
	u := newCommandUser(t)
	u.run(t, "hooks", "install", "qwen")
	u.agent(t, 2*time.Minute, nil, filepath.Join(npm, "node_modules", ".bin", "qwen"), "-p", "say hi")
	checkArrived(t, "qwen", "session_id", u.delivered(t), "SessionStart", "InstructionsLoaded")
}

// TestDroidCommandHooks: Factory Droid 0.225.2 with no key fires
// SessionStart and SessionEnd around its failed login. npm's
// @factory/cli@0.225.1 names platform packages of 0.225.1 that were never
// published, so its launcher finds no binary: the test installs the Linux
// binary's own package, @factory/cli-linux-x64@0.225.2.
func TestDroidCommandHooks(t *testing.T) {
	commandNeeds(t)
	t.Parallel()
	npm := commandNpm(t, "@factory/cli-linux-x64@0.225.2")
	u := newCommandUser(t)
	u.run(t, "hooks", "install", "droid")
	u.agent(t, 2*time.Minute, nil, filepath.Join(npm, "node_modules", "@factory", "cli-linux-x64", "bin", "droid"), "exec", "say hi")
	checkArrived(t, "droid", "session_id", u.delivered(t), "SessionStart", "SessionEnd")
}

// TestClineCommandHooks: Cline 3.0.65 with no key fires TaskStart, then
// TaskError once its provider cannot be reached (about a minute of
// retries here, with no network). It leaves a hub daemon running, which
// the test ends.
func TestClineCommandHooks(t *testing.T) {
	commandNeeds(t)
	t.Parallel()
	npm := commandNpm(t, "cline@3.0.65")
	u := newCommandUser(t)
	u.run(t, "hooks", "install", "cline")
	t.Cleanup(func() { u.stopLeftBehind(t) })
	u.agent(t, 4*time.Minute, nil, filepath.Join(npm, "node_modules", ".bin", "cline"), "say hi")
	checkArrived(t, "cline", "taskId", u.delivered(t), "TaskStart", "TaskError")
}

// TestCopilotRunsClaudeHooksAttributed: Copilot CLI 1.0.102 runs a
// trusted project's .claude/settings.json, Claude Code's hook file, with
// Claude-shaped payloads; the hooks there say --kind claude.*, and the
// events arrive as copilot.*, named for the host that fired them. The
// file is what 'difflore hooks print claude' prints (install writes a
// project's settings.local.json, which Copilot does not read); the
// project is trusted in Copilot's config.json.
func TestCopilotRunsClaudeHooksAttributed(t *testing.T) {
	commandNeeds(t)
	t.Parallel()
	npm := commandNpm(t, "@github/copilot@1.0.102")
	u := newCommandUser(t)
	project := filepath.Join(u.home, "project")
	settings := u.run(t, "hooks", "print", "claude")
	if err := os.MkdirAll(filepath.Join(project, ".claude"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, ".claude", "settings.json"), []byte(settings[strings.Index(settings, "{"):]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(u.home, ".copilot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(u.home, ".copilot", "config.json"), []byte(`{"trusted_folders":["`+project+`"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	u.agent(t, 3*time.Minute, []string{
		"COPILOT_PROVIDER_BASE_URL=http://" + closedPort(t) + "/v1",
		"COPILOT_MODEL=gpt-5.4",
	}, filepath.Join(npm, "node_modules", ".bin", "copilot"), "-p", "say hi")
	checkArrived(t, "copilot", "session_id", u.delivered(t), "SessionStart", "UserPromptSubmit", "SessionEnd")
}
