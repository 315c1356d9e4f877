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
  difflore hooks print [--autostart] [--command PATH] AGENT|--all
  difflore hooks install [--autostart] [--command PATH] [--project DIR] [--dry-run] [--trust] AGENT|--all
  difflore hooks uninstall [--project DIR] [--dry-run] AGENT|--all
  difflore hooks status [--project DIR] [AGENT|--all]

Wires an agent's hooks to 'difflore enqueue': every event the agent reports
becomes an event of kind <agent>.<event>. AGENT is claude, codex, cursor,
gemini, copilot, qwen, droid, cline, augment, windsurf, kiro, opencode,
kilo or pi. install --all wires every one of them found on this machine,
and says which it skipped and why; uninstall --all unwires every agent
wired; print --all and status --all cover every agent.

Kiro reads hooks from a workspace only: install, uninstall and status take
its folder with --project, and install --all skips it. Its hooks hand
their context over in environment variables, with no session id: they
run 'difflore enqueue --env USER_PROMPT' (see 'difflore enqueue -h').

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

func findAgent(name string) (agentSpec, error) {
	for _, a := range agents {
		if a.name == name {
			return a, nil
		}
	}
	return agentSpec{}, &exitError{code: 2, err: fmt.Errorf("unknown agent %q", name), hint: "agents: " + agentNames()}
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
		if a.projectFile != "" {
			file = a.projectFile
		}
		return filepath.Join(dir, a.projectDir, file), nil
	}
	if a.userDir == nil {
		return "", fmt.Errorf("%s has no user hooks: give a workspace with --project", a.display)
	}
	userHome, err := userHomeDir(getenv)
	if err != nil {
		return "", fmt.Errorf("find the home folder: %w", err)
	}
	return filepath.Join(a.userDir(getenv, userHome), a.file), nil
}

// kindPrefix starts the --kind of every event of the agent; a hook whose
// command holds " enqueue --kind <agent>." is difflore's, whatever path it
// runs, so that an install after the binary moved replaces it.
func (a agentSpec) kindPrefix() string { return " enqueue --kind " + a.name + "." }

func (a agentSpec) isOurs(command string) bool {
	if a.script != "" {
		return filepath.Base(command) == a.script
	}
	return strings.Contains(command, a.kindPrefix())
}

// hookCommand is the command line a hook runs for event; for an agent
// that runs difflore's script, program is the script's path, and the
// command is that alone.
func (a agentSpec) hookCommand(program, event string, autostart bool) string {
	if a.script != "" {
		return program
	}
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
	all       bool   // install: every agent found on this machine
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
	switch {
	case all:
		fl.BoolVar(&opts.all, "all", false, "install: every agent found on this machine (on PATH, or its settings folder exists); uninstall: every agent wired; print, status: every agent")
	case sub == "install":
		fl.BoolVar(&opts.all, "all", false, "wire every agent found on this machine (on PATH, or its settings folder exists)")
	case sub == "uninstall":
		fl.BoolVar(&opts.all, "all", false, "unwire every agent whose hooks are wired")
	case sub == "print":
		fl.BoolVar(&opts.all, "all", false, "print every agent's hooks, each under a line naming it")
	case sub == "status":
		fl.BoolVar(&opts.all, "all", false, "every agent (as with no agent)")
	}
	return fl, &opts, &project, &dryRun
}

// hooksRun runs the hooks subcommand sub with its parsed flags.
func hooksRun(cfg config, sub string, fl *flag.FlagSet, opts hookOptions, project string, dryRun bool) error {
	if sub == "status" {
		if fl.NArg() > 1 || opts.all && fl.NArg() > 0 {
			return &exitError{code: 2, err: errors.New("hooks status takes at most one agent, and none with --all"), hint: "agents: " + agentNames()}
		}
		return hooksStatus(cfg, fl.Arg(0), project)
	}
	if opts.all {
		if fl.NArg() != 0 || project != "" {
			return &exitError{code: 2, err: fmt.Errorf("--all is for 'hooks %s' with no agent and no --project", sub), hint: "difflore hooks " + sub + " --all"}
		}
		switch sub {
		case "print":
			return hooksPrintAll(cfg, opts)
		case "uninstall":
			return hooksUninstallAll(cfg, dryRun)
		}
		return hooksInstallAll(cfg, opts, dryRun)
	}
	if fl.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("hooks %s takes one agent", sub), hint: "agents: " + agentNames()}
	}
	a, err := findAgent(fl.Arg(0))
	if err != nil {
		return err
	}
	if opts.trust && a.name != "codex" {
		return &exitError{code: 2, err: fmt.Errorf("--trust is for codex, not %s", a.name), hint: "only Codex asks the user to trust each hook"}
	}
	return hooksDo(cfg, sub, a, opts, project, dryRun)
}

// hooksDo runs print, install or uninstall for one agent, through its
// own installer when it has one.
func hooksDo(cfg config, sub string, a agentSpec, opts hookOptions, project string, dryRun bool) error {
	if c := a.custom; c != nil {
		switch sub {
		case "print":
			return c.print(cfg, a, opts)
		case "install":
			return c.install(cfg, a, opts, project, dryRun)
		}
		return c.uninstall(cfg, a, project, dryRun)
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
	path, err := a.settingsPath(cfg.getenv, "")
	if err != nil {
		path = filepath.Join("~", filepath.Base(a.projectDir), a.file)
	}
	if a.script != "" {
		script := filepath.Join(filepath.Dir(path), a.script)
		fmt.Fprintf(cfg.stderr, "difflore: %s hooks run %s, which install writes:\n%s", a.name, script, agentScript(a, prog, opts.autostart))
		prog = script
	}
	doc := newObject()
	if _, err := a.merge(doc, prog, opts.autostart); err != nil {
		return err
	}
	// The note goes to stderr so that stdout stays JSON to redirect.
	fmt.Fprintf(cfg.stderr, "difflore: %s hooks: merge into %s (or run 'difflore hooks install %s')\n", a.name, path, a.name)
	_, err = cfg.stdout.Write(encodeJSON(doc, "  "))
	return err
}

// wiredEvents returns the agent's events that have a difflore hook in doc,
// and the programs those hooks run.
func (a agentSpec) wiredEvents(doc *jsonValue) (events, programs []string) {
	hooks := a.hooksObject(doc)
	if hooks == nil || hooks.kind != '{' {
		return nil, nil
	}
	for _, m := range hooks.members {
		found := false
		a.eachHook(m.value, func(h *jsonValue) {
			if cmd, ok := h.get(a.commandKey()).str(); ok && a.isOurs(cmd) {
				found = true
				p := commandProgram(cmd)
				if a.script != "" {
					p = cmd // a file run without a shell: no quoting
				}
				if p != "" && !slices.Contains(programs, p) {
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
