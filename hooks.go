package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

const hooksUsage = `
Usage:
  difflore hooks print [--autostart] [--command PATH] AGENT
  difflore hooks install [--autostart] [--command PATH] [--project DIR] [--dry-run] [--trust] AGENT
  difflore hooks uninstall [--project DIR] [--dry-run] AGENT
  difflore hooks status [--project DIR] [AGENT]

Wires an agent's hooks to 'difflore enqueue': every event the agent reports
becomes an event of kind <agent>.<event>. AGENT is claude, codex, cursor or
gemini.

OpenCode, Kilo and Pi (AGENT opencode, kilo, pi) have no command hooks: for
them install writes a small plugin file of difflore's into the agent's
plugin folder, which hands each event to 'difflore enqueue', and uninstall
removes that file. print prints the file.

  print      prints the hook configuration, to merge by hand (stdout), and
             names the file it belongs in (stderr)
  install    merges it into the agent's user settings file (or a project's,
             with --project): other keys and hooks are kept, a second
             install changes nothing, a copy of the file as it was is kept
             in the data home (backups/, the last 5 per file)
  uninstall  gives the file back as it was before install, byte for byte
             (or removes it, when install made it); when it changed
             since, removes difflore's hooks, and nothing else, from it
  status     says for each agent whether its hooks are wired, whether
             the program they run exists and whether the agent runs them
             (Codex: trusts them; Gemini CLI: hooksConfig.enabled is not
             false); exit 1 when events would be lost

Codex runs a hook only once the user trusts it. install --trust codex
writes that trust for difflore's hooks into Codex's config.toml (adding
its entries, nothing else); uninstall takes them out again.

The hook commands name this difflore by its absolute path, so an agent
started from a desktop, without ~/go/bin on its PATH, still finds it.

Examples:
  difflore hooks install claude
  difflore hooks install --dry-run --project . cursor
  difflore hooks status
`

// hookTimeout bounds one hook run, in seconds. enqueue returns in
// milliseconds, and within about two seconds even when the outbox is
// locked (it spills); without a timeout a hook stuck on a frozen disk
// would hold the agent for the agent's default, ten minutes.
const hookTimeout = 10

// agentSpec is what difflore knows about one agent's hooks.
type agentSpec struct {
	name string
	// events are the agent's hook events that difflore wires: those whose
	// hook may print nothing and exit 0, which every agent reads as "no
	// decision", and that only observe. Each list cites the reference it
	// was taken from.
	events []string
	// flat is Cursor's shape, event → [{command, timeout}]; the others
	// share event → [{matcher?, hooks: [{type, command, timeout}]}].
	flat bool
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
	// forwardSlashes: on Windows the agent runs hooks in Git Bash, where a
	// backslash is an escape character.
	forwardSlashes bool
	// indexedTrust: the agent keys the trust it keeps for each hook by the
	// index of its group, so removing a group must not move later ones.
	indexedTrust bool
	// plugin is set for an agent without command hooks, that loads
	// plugins in its own process: print, install, uninstall and status
	// go to the plugin* functions (hooksplugin.go), and the fields above
	// are unused.
	plugin *pluginSpec
}

// agents lists the supported agents, in the order status reports them.
var agents = []agentSpec{
	{
		name: "claude",
		// Claude Code 2.1.328, from the event table its /hooks menu shows
		// (the same text as code.claude.com/docs/en/hooks). Left out:
		// WorktreeCreate and WorktreeRemove (a hook there replaces Claude's
		// own worktree handling and must do the work), FileChanged (its
		// matcher is the list of files to watch, the user's choice) and
		// MessageDisplay (it runs, and is waited for, every few lines of
		// displayed text; the same text reaches Stop and the transcript).
		events: []string{
			"SessionStart", "Setup", "InstructionsLoaded", "UserPromptSubmit", "UserPromptExpansion",
			"PreToolUse", "PermissionRequest", "PermissionDenied", "PostToolUse", "PostToolUseFailure", "PostToolBatch",
			"Notification", "Elicitation", "ElicitationResult", "SubagentStart", "SubagentStop",
			"TaskCreated", "TaskCompleted", "TeammateIdle", "PreCompact", "PostCompact",
			"PreModelSwitch", "PostModelSwitch", "ConfigChange", "CwdChanged", "DirectoryAdded",
			"Stop", "StopFailure", "SessionEnd",
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
		forwardSlashes: true,
	},
	{
		name: "codex",
		// Codex 0.169.0, from the hooks.json schema and the event input
		// schemas in its release binary (codex-rs/hooks): all 14 events.
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
	},
	{
		name: "cursor",
		// Cursor's hook reference (cursor.com/docs/hooks, hooks.json
		// version 1, as of May 2026). Left out: the permission hooks,
		// preToolUse, subagentStart, beforeShellExecution,
		// beforeMCPExecution, beforeReadFile and beforeTabFileRead, which
		// Cursor documents as answering {"permission": …}; the after*
		// hooks and postToolUse record the same actions once done.
		events: []string{
			"sessionStart", "beforeSubmitPrompt", "postToolUse", "postToolUseFailure",
			"afterShellExecution", "afterMCPExecution", "afterFileEdit", "afterAgentThought", "afterAgentResponse",
			"subagentStop", "preCompact", "afterTabFileEdit", "stop", "sessionEnd",
		},
		flat:         true,
		timeoutScale: 1, // seconds
		userDir: func(_ func(string) string, userHome string) string {
			return filepath.Join(userHome, ".cursor")
		},
		projectDir: ".cursor",
		file:       "hooks.json",
	},
	{
		name: "gemini",
		// Gemini CLI 0.61.0, from the HookEventName enum in its bundle
		// (geminicli.com/docs/hooks/reference). Left out: BeforeModel,
		// BeforeToolSelection and AfterModel, which carry the whole model
		// request on every model call, and AfterModel runs once per
		// streamed chunk; each is waited for before the call or the stream
		// goes on.
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
	},
	// The plugin agents (hooksplugin.go).
	{
		name: "opencode",
		// OpenCode 1.18.33 loads {plugin,plugins}/*.{ts,js} from its
		// config folders (the glob in its release binary).
		plugin: &pluginSpec{
			source: openCodePluginSource, file: "difflore.js", events: openCodeEvents,
			userDir: func(getenv func(string) string, userHome string) string {
				return filepath.Join(xdgConfigDir(getenv, userHome, "opencode"), "plugins")
			},
			projectDir: filepath.Join(".opencode", "plugins"),
		},
	},
	{
		name: "kilo",
		// Kilo CLI 7.7.7 (npm @kilocode/cli), built from OpenCode: the
		// same plugins, from ~/.config/kilo and .kilo.
		plugin: &pluginSpec{
			source: openCodePluginSource, file: "difflore.js", events: openCodeEvents,
			userDir: func(getenv func(string) string, userHome string) string {
				return filepath.Join(xdgConfigDir(getenv, userHome, "kilo"), "plugins")
			},
			projectDir: filepath.Join(".kilo", "plugins"),
		},
	},
	{
		name: "pi",
		// Pi 0.73.1 (npm @mariozechner/pi-coding-agent) loads
		// extensions/*.ts from its agent folder, PI_CODING_AGENT_DIR or
		// ~/.pi/agent, and from .pi/extensions in a project.
		plugin: &pluginSpec{
			source: piExtensionSource, file: "difflore.ts", events: piEvents,
			userDir: func(getenv func(string) string, userHome string) string {
				if d := getenv("PI_CODING_AGENT_DIR"); d != "" {
					return filepath.Join(d, "extensions")
				}
				return filepath.Join(userHome, ".pi", "agent", "extensions")
			},
			projectDir: filepath.Join(".pi", "extensions"),
		},
	},
}

func findAgent(name string) (agentSpec, error) {
	for _, a := range agents {
		if a.name == name {
			return a, nil
		}
	}
	return agentSpec{}, &exitError{code: 2, err: fmt.Errorf("unknown agent %q", name), hint: "agents: claude, codex, cursor, gemini"}
}

// settingsPath is the file an install writes: the user's, or the
// project's under project when it is set.
func (a agentSpec) settingsPath(getenv func(string) string, project string) (string, error) {
	if project != "" {
		dir, err := filepath.Abs(project)
		if err != nil {
			return "", err
		}
		file := a.file
		if a.name == "claude" {
			file = "settings.local.json"
		}
		return filepath.Join(dir, a.projectDir, file), nil
	}
	userHome, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the home folder: %w", err)
	}
	return filepath.Join(a.userDir(getenv, userHome), a.file), nil
}

// kindPrefix starts the --kind of every event of the agent; a hook whose
// command holds " enqueue --kind <agent>." is difflore's, whatever path it
// runs, so that an install after the binary moved replaces it.
func (a agentSpec) kindPrefix() string { return " enqueue --kind " + a.name + "." }

func (a agentSpec) isOurs(command string) bool { return strings.Contains(command, a.kindPrefix()) }

// hookCommand is the command line a hook runs for event.
func (a agentSpec) hookCommand(program, event string, autostart bool) string {
	c := program + a.kindPrefix() + event
	if autostart {
		c += " --ensure-daemon"
	}
	return c
}

// timeout is the timeout of the hook on event, in the agent's unit.
func (a agentSpec) timeout(event string) int {
	if t, ok := a.shortTimeouts[event]; ok {
		return t * a.timeoutScale
	}
	return hookTimeout * a.timeoutScale
}

// hookOptions are the flags print and install share.
type hookOptions struct {
	autostart bool
	command   string // the program to run; empty for this difflore
	trust     bool   // codex: trust the hooks in config.toml
}

// program is the first word of every hook command: the absolute path of
// this difflore, or --command, quoted for the agent's shell.
func (o hookOptions) program(a agentSpec) (string, error) {
	prog := o.command
	if prog == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find own executable: %w", err)
		}
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		prog = exe
	}
	return shellWord(prog, runtime.GOOS == "windows", a.forwardSlashes)
}

// shellWord writes a program path so that the shell an agent runs hooks in
// reads it back as it is.
//
// On Unix every agent uses a POSIX shell (Claude Code /bin/sh, Gemini CLI
// bash, Codex the user's login shell, Cursor sh): a path with any
// character a shell treats specially is single-quoted.
//
// On Windows the shells differ: Codex runs cmd.exe /C with the command as
// one argument quoted the C runtime's way, which cmd does not understand
// (a quoted path inside fails); Cursor runs cmd.exe; Gemini CLI runs
// PowerShell; Claude Code runs Git Bash, or PowerShell without it. No
// quoting means the same to all of them, so the path is written without
// any: a path with a space or another special character is replaced by its
// 8.3 short name (C:\PROGRA~1\…), and with forward slashes where Git Bash
// may run it. A path that still needs quoting is refused, with a hint.
func shellWord(path string, windows, forwardSlashes bool) (string, error) {
	if !windows {
		if plainWord(path, "/._-+,:@%=") {
			return path, nil
		}
		return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'", nil
	}
	const safe = `\/:._-~+`
	if !plainWord(path, safe) {
		short, err := shortPathName(path)
		if err != nil || !plainWord(short, safe) {
			return "", &exitError{code: 1, err: fmt.Errorf("the path %q would need quoting, which the agents' Windows shells do not agree on, and it has no short (8.3) name", path),
				hint: "install difflore in a folder whose path has no spaces, or pass --command with such a path"}
		}
		path = short
	}
	if forwardSlashes {
		path = strings.ReplaceAll(path, `\`, "/")
	}
	return path, nil
}

// plainWord reports whether s is made only of letters, digits and the
// characters of extra, so that no shell splits or expands it.
func plainWord(s, extra string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}

// commandProgram reads back the program a hook command runs: the inverse
// of shellWord, for status. A bare name is looked up as the agent's shell
// would, on PATH.
func commandProgram(command string) string {
	command = strings.TrimLeft(command, " \t")
	var prog string
	switch {
	case strings.HasPrefix(command, "'"):
		// POSIX single quotes, with '\'' for a quote inside.
		var b strings.Builder
		rest := command
		for strings.HasPrefix(rest, "'") {
			end := strings.IndexByte(rest[1:], '\'')
			if end < 0 {
				return ""
			}
			b.WriteString(rest[1 : 1+end])
			rest = rest[2+end:]
			if !strings.HasPrefix(rest, `\'`) {
				break
			}
			b.WriteByte('\'')
			rest = rest[2:]
		}
		prog = b.String()
	case strings.HasPrefix(command, `"`):
		end := strings.IndexByte(command[1:], '"')
		if end < 0 {
			return ""
		}
		prog = command[1 : 1+end]
	default:
		prog, _, _ = strings.Cut(command, " ")
	}
	return prog
}

func cmdHooks(cfg config, args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, err: errors.New("usage: difflore hooks print|install|uninstall|status AGENT"), hint: "run 'difflore hooks -h' for usage"}
	}
	if usageAsked(cfg, []string{args[0]}, "", true) {
		// hooks -h lists the flags of every subcommand.
		fl, _, _, _ := hooksFlags(cfg, "hooks", "")
		fl.Usage()
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "print", "install", "uninstall", "status":
	default:
		return &exitError{code: 2, err: fmt.Errorf("unknown hooks command %q", sub), hint: "use print, install, uninstall or status"}
	}
	fl, opts, project, dryRun := hooksFlags(cfg, "hooks "+sub, sub)
	if err := parseFlags(fl, rest); err != nil {
		return err
	}
	return hooksRun(cfg, sub, fl, *opts, *project, *dryRun)
}

// hooksFlags is the flag set of the hooks subcommand sub, named name, or,
// for an empty sub, of them all (for hooks -h), and where its flags go.
func hooksFlags(cfg config, name, sub string) (*flag.FlagSet, *hookOptions, *string, *bool) {
	fl := newFlagSet(cfg, name, hooksUsage)
	var opts hookOptions
	var project string
	var dryRun bool
	all := sub == ""
	if all || sub == "print" || sub == "install" {
		fl.BoolVar(&opts.autostart, "autostart", false, "add --ensure-daemon, so the first event starts the daemon")
		fl.StringVar(&opts.command, "command", "", "the difflore `PATH` the hooks run (default: this difflore's absolute path)")
	}
	if sub != "print" {
		fl.StringVar(&project, "project", "", "the settings file of the project in `DIR`, not the user's")
	}
	if all || sub == "install" || sub == "uninstall" {
		fl.BoolVar(&dryRun, "dry-run", false, "show the change and write nothing")
	}
	if all || sub == "install" {
		fl.BoolVar(&opts.trust, "trust", false, "codex: trust difflore's hooks in Codex's config.toml, so that Codex runs them")
	}
	return fl, &opts, &project, &dryRun
}

// hooksRun runs the hooks subcommand sub with its parsed flags.
func hooksRun(cfg config, sub string, fl *flag.FlagSet, opts hookOptions, project string, dryRun bool) error {
	if sub == "status" {
		if fl.NArg() > 1 {
			return &exitError{code: 2, err: errors.New("hooks status takes at most one agent"), hint: "agents: claude, codex, cursor, gemini"}
		}
		return hooksStatus(cfg, fl.Arg(0), project)
	}
	if fl.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("hooks %s takes one agent", sub), hint: "agents: claude, codex, cursor, gemini"}
	}
	a, err := findAgent(fl.Arg(0))
	if err != nil {
		return err
	}
	if opts.trust && a.name != "codex" {
		return &exitError{code: 2, err: fmt.Errorf("--trust is for codex, not %s", a.name), hint: "only Codex asks the user to trust each hook"}
	}
	if a.plugin != nil {
		return pluginRun(cfg, a, sub, opts, project, dryRun)
	}
	switch sub {
	case "print":
		return hooksPrint(cfg, a, opts)
	case "install":
		return hooksInstall(cfg, a, opts, project, dryRun)
	}
	return hooksUninstall(cfg, a, project, dryRun)
}

// hooksPrint prints what install would merge into an empty settings file.
func hooksPrint(cfg config, a agentSpec, opts hookOptions) error {
	prog, err := opts.program(a)
	if err != nil {
		return err
	}
	doc := newObject()
	if _, err := a.merge(doc, prog, opts.autostart); err != nil {
		return err
	}
	path, err := a.settingsPath(cfg.getenv, "")
	if err != nil {
		path = filepath.Join("~", filepath.Base(a.projectDir), a.file)
	}
	// The note goes to stderr so that stdout stays JSON to redirect.
	fmt.Fprintf(cfg.stderr, "difflore: %s hooks: merge into %s (or run 'difflore hooks install %s')\n", a.name, path, a.name)
	_, err = cfg.stdout.Write(encodeJSON(doc, "  "))
	return err
}

// wiredEvents returns the agent's events that have a difflore hook in doc,
// and the programs those hooks run.
func (a agentSpec) wiredEvents(doc *jsonValue) (events, programs []string) {
	hooks := doc.get("hooks")
	if hooks == nil || hooks.kind != '{' {
		return nil, nil
	}
	for _, m := range hooks.members {
		found := false
		a.eachHook(m.value, func(h *jsonValue) {
			if cmd, ok := h.get("command").str(); ok && a.isOurs(cmd) {
				found = true
				if p := commandProgram(cmd); p != "" && !slices.Contains(programs, p) {
					programs = append(programs, p)
				}
			}
		})
		if found && slices.Contains(a.events, m.key) {
			events = append(events, m.key)
		}
	}
	return events, programs
}
