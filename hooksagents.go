package main

import (
	"os"
	"path/filepath"
	"strings"
)

// agentSpec is what difflore knows about one agent's hooks: one table per
// agent below, each citing the reference its events were taken from.
type agentSpec struct {
	name string
	// display is the agent's own name, for messages.
	display string
	// refVersion is the release the event list is of, when it is one.
	refVersion string
	// reference is where the event list was taken from, with its version
	// or date; status and the README cite it.
	reference string
	// events are the agent's hook events that difflore wires: those whose
	// hook may print nothing and exit 0, which every agent reads as "no
	// decision", and that only observe.
	events []string
	// gaps are what difflore knows of releases other than the reference's:
	// wired events a release does not fire, events it adds that difflore
	// does not wire. hooks status reads them against the installed version.
	gaps []releaseGap
	// style is the shape of one event's list of hooks.
	style hookStyle
	// topLevel: the events are the top-level keys of the file (Factory
	// Droid's hooks.json), not those of its "hooks" object.
	topLevel bool
	// timeoutScale turns hookTimeout into the agent's unit.
	timeoutScale int
	// shortTimeouts are events whose hooks the agent allows less time, in
	// seconds: a longer timeout only earns a warning on every run.
	shortTimeouts map[string]int
	// userDir is the folder of the user settings file, from the user's
	// home and the agent's own environment variable for it; projectDir is
	// the folder in a project.
	userDir    func(getenv func(string) string, userHome string) string
	projectDir string
	file       string
	// projectFile, when set, is the file's name in a project, when it is
	// not file (Claude Code's settings.local.json).
	projectFile string
	// forwardSlashes: on Windows the agent runs hooks in Git Bash, where a
	// backslash is an escape character.
	forwardSlashes bool
	// indexedTrust: the agent keys the trust it keeps for each hook by the
	// index of its group, so removing a group must not move later ones.
	indexedTrust bool
	// binaries are the agent's program names, looked up on PATH to find
	// the agent (install --all) and ask it its version (status).
	binaries []string
	// script, when set, is the file name of the sh script difflore writes
	// beside the settings file, which every hook runs (Auggie): the
	// hook's command is the script's path, and the kind its argument.
	script string
	// custom installs an agent whose hooks are not entries merged into one
	// JSON file: Cline's executables, Kiro's hook files, the plugin
	// agents' plugin files.
	custom *hookInstaller
	// files is set for an agent that reads one file per hook from a
	// folder (hooksfiles.go): file is then the folder's name.
	files *eventFiles
	// plugin is set for an agent without command hooks, that loads
	// plugins in its own process (hooksplugin.go): its custom installer
	// writes the plugin file, and the settings-file fields are unused.
	plugin *pluginSpec
}

// hookStyle is the shape of one event's list of hooks in a settings file.
type hookStyle int

const (
	// styleGroups is Claude Code's, which most agents copy:
	// event → [{matcher?, hooks: [{type, command, timeout}]}].
	styleGroups hookStyle = iota
	// styleFlat is Cursor's: event → [{command, timeout}].
	styleFlat
	// styleCopilot is Copilot CLI's: event → [{type, bash, powershell,
	// timeoutSec}], a command for each of the two shells it runs hooks in.
	styleCopilot
	// styleAugment is Auggie's: Claude Code's groups, with a hook's
	// command a script file (it must be a .sh path) and its arguments in
	// args.
	styleAugment
	// styleWindsurf is Windsurf's: event → [{command, show_output}], with
	// no timeout.
	styleWindsurf
)

// commandKey is the field of a hook entry that holds its command; Copilot
// CLI has one per shell, and bash is read (powershell is written alike).
func (a agentSpec) commandKey() string {
	if a.style == styleCopilot {
		return "bash"
	}
	return "command"
}

// hookInstaller is how an agent's hooks are installed when they are not
// entries merged into one settings file. Each function does what the
// hooks subcommand of its name promises (see hooksUsage); status returns
// the agent's line, whether its events would arrive and, when not, what
// to do.
type hookInstaller struct {
	print     func(cfg config, a agentSpec, opts hookOptions) error
	install   func(cfg config, a agentSpec, opts hookOptions, project string, dryRun bool) error
	uninstall func(cfg config, a agentSpec, project string, dryRun bool) error
	status    func(cfg config, a agentSpec, project string) (line string, ok bool, hint string)
}

// releaseGap is what a range of an agent's releases does differently
// from the release difflore's event list was taken from. upTo and since
// bound the range (either may be empty): releases up to upTo, or since
// since, inclusive.
type releaseGap struct {
	upTo, since string
	// lacks are wired events these releases do not fire.
	lacks []string
	// adds are events these releases fire that difflore does not wire.
	adds []string
	// source says how this was found.
	source string
}

func homeDir(sub ...string) func(func(string) string, string) string {
	return func(_ func(string) string, userHome string) string {
		return filepath.Join(append([]string{userHome}, sub...)...)
	}
}

// agents lists the supported agents, in the order status reports them.
var agents = []agentSpec{
	{
		name:       "claude",
		refVersion: "2.1.328",
		display:    "Claude Code",
		// Left out: WorktreeCreate and WorktreeRemove (a hook there
		// replaces Claude's own worktree handling and must do the work),
		// FileChanged (its matcher is the list of files to watch, the
		// user's choice) and MessageDisplay (it runs, and is waited for,
		// every few lines of displayed text; the same text reaches Stop
		// and the transcript).
		reference: "Claude Code 2.1.328, the event table its /hooks menu shows (code.claude.com/docs/en/hooks)",
		events: []string{
			"SessionStart", "Setup", "InstructionsLoaded", "UserPromptSubmit", "UserPromptExpansion",
			"PreToolUse", "PermissionRequest", "PermissionDenied", "PostToolUse", "PostToolUseFailure", "PostToolBatch",
			"Notification", "Elicitation", "ElicitationResult", "SubagentStart", "SubagentStop",
			"TaskCreated", "TaskCompleted", "TeammateIdle", "PreCompact", "PostCompact",
			"PreModelSwitch", "PostModelSwitch", "ConfigChange", "CwdChanged", "DirectoryAdded",
			"Stop", "StopFailure", "SessionEnd",
		},
		gaps: []releaseGap{
			{
				// 2.1.197 is what npm installs on Node 20 (later releases
				// need Node 22).
				upTo:   "2.1.197",
				lacks:  []string{"PreModelSwitch", "PostModelSwitch", "DirectoryAdded"},
				source: "the event names in the 2.1.197 release binary",
			},
			{
				since:  "2.1.332",
				adds:   []string{"PreSkillShellCommand"},
				source: "the 2.1.332 release",
			},
		},
		timeoutScale: 1, // seconds
		userDir: func(getenv func(string) string, userHome string) string {
			if d := getenv("CLAUDE_CONFIG_DIR"); d != "" {
				return d
			}
			return filepath.Join(userHome, ".claude")
		},
		// settings.local.json is the project file Claude keeps out of
		// version control: the hook names this machine's difflore.
		projectDir:     ".claude",
		file:           "settings.json",
		projectFile:    "settings.local.json",
		forwardSlashes: true,
		binaries:       []string{"claude"},
	},
	{
		name:       "codex",
		refVersion: "0.169.0",
		display:    "Codex",
		reference:  "Codex 0.169.0, the hooks.json schema and the event input schemas in its release binary (codex-rs/hooks): all 14 events",
		events: []string{
			"SessionStart", "UserPromptSubmit", "PreModelRequest", "PostModelRequest",
			"PreToolUse", "PermissionRequest", "PostToolUse", "SubagentStart", "SubagentStop",
			"PreCompact", "PostCompact", "Interrupt", "Stop", "SessionEnd",
		},
		indexedTrust: true,
		timeoutScale: 1, // seconds
		// Codex 0.169.0 cuts the timeout of SessionEnd and Interrupt hooks to 3 s, with a
		// warning on every run when it says more.
		shortTimeouts: map[string]int{"SessionEnd": 3, "Interrupt": 3},
		userDir: func(getenv func(string) string, userHome string) string {
			if d := getenv("CODEX_HOME"); d != "" {
				// Codex resolves CODEX_HOME's symlinks, and keys the
				// trust of its hooks by the path it resolved to.
				if resolved, err := filepath.EvalSymlinks(d); err == nil {
					return resolved
				}
				return d
			}
			return filepath.Join(userHome, ".codex")
		},
		projectDir: ".codex",
		file:       "hooks.json",
		binaries:   []string{"codex"},
	},
	{
		name:    "cursor",
		display: "Cursor",
		// Left out: the permission hooks, preToolUse, subagentStart,
		// beforeShellExecution, beforeMCPExecution, beforeReadFile and
		// beforeTabFileRead, which Cursor documents as answering
		// {"permission": …}; the after* hooks and postToolUse record the
		// same actions once done.
		reference: "Cursor's hook reference (cursor.com/docs/hooks, hooks.json version 1, as of May 2026)",
		events: []string{
			"sessionStart", "beforeSubmitPrompt", "postToolUse", "postToolUseFailure",
			"afterShellExecution", "afterMCPExecution", "afterFileEdit", "afterAgentThought", "afterAgentResponse",
			"subagentStop", "preCompact", "afterTabFileEdit", "stop", "sessionEnd",
		},
		style:        styleFlat,
		timeoutScale: 1, // seconds
		userDir:      homeDir(".cursor"),
		projectDir:   ".cursor",
		file:         "hooks.json",
		binaries:     []string{"cursor-agent", "cursor"},
	},
	{
		name:       "gemini",
		refVersion: "0.61.0",
		display:    "Gemini CLI",
		// Left out: BeforeModel, BeforeToolSelection and AfterModel, which
		// carry the whole model request on every model call, and
		// AfterModel runs once per streamed chunk; each is waited for
		// before the call or the stream goes on.
		reference: "Gemini CLI 0.61.0, the HookEventName enum in its bundle (geminicli.com/docs/hooks/reference)",
		events: []string{
			"SessionStart", "BeforeAgent", "BeforeTool", "AfterTool", "AfterAgent",
			"Notification", "PreCompress", "SessionEnd",
		},
		timeoutScale: 1000, // milliseconds
		userDir: func(getenv func(string) string, userHome string) string {
			if d := getenv("GEMINI_CLI_HOME"); d != "" {
				return filepath.Join(d, ".gemini")
			}
			return filepath.Join(userHome, ".gemini")
		},
		projectDir: ".gemini",
		file:       "settings.json",
		binaries:   []string{"gemini"},
	},
	{
		name:       "copilot",
		refVersion: "1.0.102",
		display:    "Copilot CLI",
		// Copilot CLI reads every *.json in its hooks folder: difflore's
		// hooks are a file of its own there, which uninstall removes.
		// The camelCase names, not their PascalCase twins: with those,
		// Copilot sends its own camelCase payloads (sessionId, toolName),
		// which tell it apart from Claude Code's (see hostOf). Left out:
		// none; preToolUse and permissionRequest read an empty answer as
		// no decision.
		reference: "Copilot CLI 1.0.102, its hook configuration reference (docs.github.com, hooks configuration) and the events it fired in a probe of 2026-12-07",
		events: []string{
			"sessionStart", "userPromptSubmitted", "userPromptTransformed", "preToolUse", "permissionRequest",
			"postToolUse", "postToolUseFailure", "subagentStart", "subagentStop", "preCompact",
			"notification", "errorOccurred", "agentStop", "sessionEnd",
		},
		style:        styleCopilot,
		timeoutScale: 1, // seconds: timeoutSec
		userDir: func(getenv func(string) string, userHome string) string {
			if d := getenv("COPILOT_HOME"); d != "" {
				return filepath.Join(d, "hooks")
			}
			return filepath.Join(userHome, ".copilot", "hooks")
		},
		projectDir: filepath.Join(".github", "hooks"),
		file:       "difflore.json",
		binaries:   []string{"copilot"},
	},
	{
		name:       "qwen",
		refVersion: "0.24.4",
		display:    "Qwen Code",
		// Left out: MessageDisplay, which runs, and is waited for, as
		// text is displayed (as Claude Code's); SessionDelete, which
		// runs when a user deletes a saved session and not in one.
		reference: "Qwen Code 0.24.4, the HookEventName enum in its bundle (packages/core/src/hooks/types.ts)",
		events: []string{
			"SessionStart", "InstructionsLoaded", "UserPromptSubmit", "UserPromptExpansion",
			"PreToolUse", "PermissionRequest", "PermissionDenied", "PostToolUse", "PostToolUseFailure", "PostToolBatch",
			"Notification", "SubagentStart", "SubagentStop", "TodoCreated", "TodoCompleted",
			"PreCompact", "PostCompact", "Stop", "StopFailure", "SessionEnd",
		},
		timeoutScale: 1000, // milliseconds
		userDir:      homeDir(".qwen"),
		projectDir:   ".qwen",
		file:         "settings.json",
		binaries:     []string{"qwen"},
	},
	{
		name:       "droid",
		refVersion: "0.225.2",
		display:    "Factory Droid",
		// hooks.json holds the events at its top level, apart from the
		// settings.json that Droid itself rewrites.
		reference: "Factory Droid 0.225, its hooks reference (docs.factory.ai/reference/hooks-reference) and the events 0.225.2 fired in a probe of 2026-12-07",
		events: []string{
			"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Notification",
			"SubagentStop", "PreCompact", "Stop", "SessionEnd",
		},
		topLevel:     true,
		timeoutScale: 1, // seconds
		userDir:      homeDir(".factory"),
		projectDir:   ".factory",
		file:         "hooks.json",
		binaries:     []string{"droid"},
	},
	{
		name:       "cline",
		refVersion: "3.0.65",
		display:    "Cline",
		// One executable per event, named after it (hookscline.go).
		reference: "Cline 3.0.65 (docs.cline.bot/features/hooks/hook-reference, and the events it fired in a probe of 2026-12-07)",
		events: []string{
			"TaskStart", "TaskResume", "TaskCancel", "TaskComplete", "TaskError",
			"PreToolUse", "PostToolUse", "UserPromptSubmit", "PreCompact",
		},
		userDir:    homeDir(".cline"),
		projectDir: filepath.Join(".clinerules"),
		file:       "hooks",
		binaries:   []string{"cline"},
		// On Windows Cline runs the script in Git Bash.
		forwardSlashes: true,
		custom:         eventFilesInstaller(),
		files:          clineFiles,
	},
	{
		name:    "augment",
		display: "Auggie",
		// Nothing fires here without Augment's backend: wired from its
		// documented shapes and the release's bundle.
		refVersion: "0.36.0",
		reference:  "Auggie 0.36.0, the hookEventName literals of its bundle (docs.augmentcode.com/cli/hooks)",
		events:     []string{"SessionStart", "PreToolUse", "PostToolUse", "Notification", "Stop", "SessionEnd"},
		style:      styleAugment,
		script:     "difflore-hook.sh",
		// On Windows Auggie runs a .sh hook with bash.exe.
		forwardSlashes: true,
		userDir:        homeDir(".augment"),
		projectDir:     ".augment",
		file:           "settings.json",
		binaries:       []string{"auggie"},
	},
	{
		name:    "windsurf",
		display: "Windsurf",
		// Not installable here: from the reference alone. Left out: the
		// pre_ hooks other than pre_user_prompt, which are a decision on
		// the action (exit 2 blocks it) that the post_ hooks record once
		// done.
		reference: "Windsurf Cascade hooks reference (docs.windsurf.com/windsurf/cascade/hooks, as read 2026-12-07)",
		events: []string{
			"pre_user_prompt", "post_read_code", "post_write_code", "post_run_command",
			"post_mcp_tool_use", "post_cascade_response", "post_setup_worktree",
		},
		style:      styleWindsurf,
		userDir:    homeDir(".codeium", "windsurf"),
		projectDir: ".windsurf",
		file:       "hooks.json",
		binaries:   []string{"windsurf"},
	},
	{
		name:    "kiro",
		display: "Kiro",
		// Not installable here: from the reference alone (hookskiro.go).
		// Kiro reads hooks from a workspace's .kiro/hooks only. Left
		// out: preToolUse and postToolUse (the reference runs a shell
		// command on Prompt Submit and Agent Stop only, and gives a
		// tool hook's command nothing of the tool: kirodotdev/Kiro#7408),
		// the file and spec-task triggers (their patterns and tasks are
		// the user's choice) and the manual trigger.
		reference:  "Kiro's agent hooks reference (kiro.dev/docs/hooks: types and actions, as read 2026-12-07)",
		events:     []string{"promptSubmit", "agentStop"},
		projectDir: ".kiro",
		file:       "hooks",
		binaries:   []string{"kiro"},
		custom:     eventFilesInstaller(),
		files:      kiroFiles,
	},
	// The plugin agents (hooksplugin.go). userDir is the agent's own
	// folder, whose presence says it has run here (install --all).
	{
		name:    "opencode",
		display: "OpenCode",
		// OpenCode 1.18.33 loads {plugin,plugins}/*.{ts,js} from its
		// config folders (the glob in its release binary).
		reference:  "OpenCode 1.18.33 (opencode.ai/docs/plugins, and the plugin glob and bus events of its release binary)",
		refVersion: "1.18.33",
		events:     openCodeEvents,
		userDir: func(getenv func(string) string, userHome string) string {
			return xdgConfigDir(getenv, userHome, "opencode")
		},
		binaries: []string{"opencode"},
		custom:   pluginInstaller(),
		plugin: &pluginSpec{
			source: openCodePluginSource, file: "difflore.js", events: openCodeEvents,
			userDir: func(getenv func(string) string, userHome string) string {
				return filepath.Join(xdgConfigDir(getenv, userHome, "opencode"), "plugins")
			},
			projectDir: filepath.Join(".opencode", "plugins"),
		},
	},
	{
		name:    "kilo",
		display: "Kilo",
		// Kilo CLI 7.7.7 (npm @kilocode/cli), built from OpenCode: the
		// same plugins, from ~/.config/kilo and .kilo.
		reference:  "Kilo CLI 7.7.7 (npm @kilocode/cli, OpenCode's plugin interface)",
		refVersion: "7.7.7",
		events:     openCodeEvents,
		userDir: func(getenv func(string) string, userHome string) string {
			return xdgConfigDir(getenv, userHome, "kilo")
		},
		binaries: []string{"kilo"},
		custom:   pluginInstaller(),
		plugin: &pluginSpec{
			source: openCodePluginSource, file: "difflore.js", events: openCodeEvents,
			userDir: func(getenv func(string) string, userHome string) string {
				return filepath.Join(xdgConfigDir(getenv, userHome, "kilo"), "plugins")
			},
			projectDir: filepath.Join(".kilo", "plugins"),
		},
	},
	{
		name:    "pi",
		display: "Pi",
		// Pi 0.73.1 (npm @mariozechner/pi-coding-agent) loads
		// extensions/*.ts from its agent folder, PI_CODING_AGENT_DIR or
		// ~/.pi/agent, and from .pi/extensions in a project.
		reference:  "Pi 0.73.1 (npm @mariozechner/pi-coding-agent, its extensions documentation and loader)",
		refVersion: "0.73.1",
		events:     piEvents,
		userDir:    piAgentDir,
		binaries:   []string{"pi"},
		custom:     pluginInstaller(),
		plugin: &pluginSpec{
			source: piExtensionSource, file: "difflore.ts", events: piEvents,
			userDir: func(getenv func(string) string, userHome string) string {
				return filepath.Join(piAgentDir(getenv, userHome), "extensions")
			},
			projectDir: filepath.Join(".pi", "extensions"),
		},
	},
}

// piAgentDir is Pi's own folder: PI_CODING_AGENT_DIR, else ~/.pi/agent.
func piAgentDir(getenv func(string) string, userHome string) string {
	if d := getenv("PI_CODING_AGENT_DIR"); d != "" {
		return d
	}
	return filepath.Join(userHome, ".pi", "agent")
}

// agentList is the agents' names, in the table's order.
func agentList() []string {
	var names []string
	for _, a := range agents {
		names = append(names, a.name)
	}
	return names
}

// agentNames lists the agents' names, for hints.
func agentNames() string { return strings.Join(agentList(), ", ") }

// dirExists reports whether path is a folder.
func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
