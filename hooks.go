package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

const hooksUsage = `
Usage: difflore hooks print [--autostart] claude|codex|cursor|gemini

Prints the hook configuration that makes an agent pass its events to
'difflore enqueue', with the kind set to <agent>.<event>. Merge it into the
agent's settings file named in the first line of the output.

Examples:
  difflore hooks print claude
  difflore hooks print --autostart cursor > .cursor/hooks.json
`

// agentHooks describes where an agent's hooks live and which of its events
// difflore subscribes to. Only events whose hooks may stay silent on
// standard output are listed: some agents read a hook's output as a
// decision, and enqueue prints nothing.
var agentHooks = map[string]struct {
	file   string
	events []string
}{
	"claude": {"~/.claude/settings.json (or .claude/settings.json in a project)",
		[]string{"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Notification", "Stop", "SubagentStop", "PreCompact", "SessionEnd"}},
	"gemini": {"~/.gemini/settings.json (or .gemini/settings.json in a project)",
		[]string{"SessionStart", "BeforeAgent", "AfterTool", "AfterAgent", "Notification", "PreCompress", "SessionEnd"}},
	"cursor": {"~/.cursor/hooks.json (or .cursor/hooks.json in a project)",
		[]string{"afterFileEdit", "afterShellExecution", "afterMCPExecution", "afterAgentResponse", "stop"}},
	"codex": {"~/.codex/config.toml", []string{"agent-turn-complete"}},
}

func cmdHooks(cfg config, args []string) error {
	if len(args) == 0 || args[0] != "print" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(cfg.stdout, strings.TrimLeft(hooksUsage, "\n"))
			return nil
		}
		return &exitError{code: 2, err: fmt.Errorf("usage: difflore hooks print AGENT"), hint: "agents: claude, codex, cursor, gemini"}
	}
	fl := newFlagSet(cfg, "hooks print", hooksUsage)
	autostart := fl.Bool("autostart", false, "add --ensure-daemon, so the first event starts the daemon")
	if err := parseFlags(fl, args[1:]); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("hooks print takes one agent"), hint: "agents: claude, codex, cursor, gemini"}
	}
	agent := fl.Arg(0)
	spec, ok := agentHooks[agent]
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown agent %q", agent), hint: "agents: claude, codex, cursor, gemini"}
	}
	extra := ""
	if *autostart {
		extra = " --ensure-daemon"
	}
	out, err := renderHooks(agent, spec.events, extra)
	if err != nil {
		return err
	}
	// The note goes to stderr so that stdout stays valid JSON (or TOML) to
	// redirect into a file.
	fmt.Fprintf(cfg.stderr, "difflore: %s hooks: merge into %s\n", agent, spec.file)
	fmt.Fprint(cfg.stdout, out)
	return nil
}

// renderHooks builds one agent's configuration. Claude Code and Gemini CLI
// share a shape: event → groups → command hooks, with a matcher for tool
// events. Cursor lists commands per event. Codex runs one notify program and
// appends the event JSON as its last argument, which enqueue accepts.
func renderHooks(agent string, events []string, extra string) (string, error) {
	command := func(event string) string { return "difflore enqueue --kind " + agent + "." + event + extra }
	var v any
	switch agent {
	case "claude", "gemini":
		type hook struct {
			Type    string `json:"type"`
			Command string `json:"command"`
		}
		type group struct {
			Matcher string `json:"matcher,omitempty"`
			Hooks   []hook `json:"hooks"`
		}
		m := map[string][]group{}
		for _, e := range events {
			g := group{Hooks: []hook{{Type: "command", Command: command(e)}}}
			if strings.HasSuffix(e, "ToolUse") || strings.HasSuffix(e, "Tool") {
				g.Matcher = "*"
			}
			m[e] = []group{g}
		}
		v = map[string]any{"hooks": m}
	case "cursor":
		m := map[string][]map[string]string{}
		for _, e := range events {
			m[e] = []map[string]string{{"command": command(e)}}
		}
		v = map[string]any{"version": 1, "hooks": m}
	case "codex":
		args := append([]string{"difflore", "enqueue", "--kind", "codex." + events[0]}, strings.Fields(extra)...)
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = fmt.Sprintf("%q", a)
		}
		return "notify = [" + strings.Join(quoted, ", ") + "]\n", nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}
