package main

import (
	"encoding/json"
)

// Kiro (the IDE) reads its agent hooks from a workspace only: one JSON
// file per hook, .kiro/hooks/<name>.kiro.hook (kirodotdev/Kiro#7408 names
// the files so), each {enabled, name, description, version, when: {type},
// then: {type, command, timeout}}. Its reference (kiro.dev/docs/hooks,
// "Hook types" and "Hook actions", as read 2026-12-07) says: a Shell
// Command action runs on the Prompt Submit (promptSubmit) and Agent Stop
// (agentStop) triggers; on Prompt Submit the prompt is in the USER_PROMPT
// environment variable; with exit 0 the command's standard output is added
// to the agent's context. Nothing is said of standard input, nor of a
// session id: Kiro sends none. The timeout, in seconds, is the one of the
// hook files published beside that reference (everything-claude-code's
// .kiro/hooks README, 2026-03-22); difflore has not seen Kiro run.
//
// So difflore's hook runs 'difflore enqueue --env USER_PROMPT', which
// builds the payload from the environment, never reads standard input and
// prints nothing, and names the session by the Kiro process that ran it and
// the workspace (enqueueenv.go says why that cannot merge two windows).

// kiroFiles are Kiro's hook files.
var kiroFiles = &eventFiles{
	name:       func(event string) string { return "difflore-" + event + ".kiro.hook" },
	content:    kiroHook,
	commands:   kiroCommands,
	mode:       0o644,
	perProject: true,
}

// kiroEnv are the environment variables Kiro hands a hook's command.
const kiroEnv = "USER_PROMPT"

// kiroHookFile is a .kiro.hook file, its keys in the order Kiro writes them.
type kiroHookFile struct {
	Enabled     bool   `json:"enabled"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
	When        struct {
		Type string `json:"type"`
	} `json:"when"`
	Then struct {
		Type    string `json:"type"`
		Command string `json:"command"`
		Timeout int    `json:"timeout,omitempty"`
	} `json:"then"`
}

// kiroHook is difflore's hook file for event.
func kiroHook(a agentSpec, program, event string, autostart bool) []byte {
	var h kiroHookFile
	h.Enabled, h.Version = true, "1"
	h.Name = "difflore " + event
	h.Description = "Hands each " + event + " to difflore; 'difflore hooks uninstall --project DIR " + a.name + "' removes this file."
	h.When.Type = event
	h.Then.Type, h.Then.Timeout = "runCommand", hookTimeout
	h.Then.Command = a.hookCommand(program, event, autostart) + " --env " + kiroEnv
	b, _ := json.MarshalIndent(h, "", "  ")
	return append(b, '\n')
}

// kiroCommands is the command of a hook file.
func kiroCommands(data []byte) []string {
	var h kiroHookFile
	if json.Unmarshal(data, &h) != nil || h.Then.Command == "" {
		return nil
	}
	return []string{h.Then.Command}
}
