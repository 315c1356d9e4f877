package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OpenCode, Kilo and Pi have no command hooks: they run plugins in their own
// process (OpenCode and Kilo JavaScript plugins, Pi TypeScript extensions).
// For them install writes one small plugin file of difflore's into the
// folder the agent loads plugins from, and uninstall removes that file and
// nothing else (and the folders install made for it, when they are empty).
// The file names this difflore by its absolute path as a JavaScript string
// literal, and runs it with spawnSync and no shell, so no shell quoting is
// involved on any OS.
//
// What each plugin hands over, and under which kind (README.md, "Plugin
// agents"):
//
//   - OpenCode and Kilo: the bus events of plugins/opencode.js's list as
//     AGENT.<event type> (opencode.session.idle), payload
//     {"sessionID": …, "event": {id, type, properties}}; and the hooks
//     chat.message, tool.execute.before and tool.execute.after as
//     AGENT.<hook> (opencode.tool.execute.before), payload
//     {"sessionID": …, "input": …, "output": …}.
//   - Pi: the events of plugins/pi.ts's list as pi.<event type>
//     (pi.session_start), payload {"sessionID": …, "event": …}, the session
//     id from pi's session manager.
//
// sessionID is the payload's first key, which OTLP export reads as the
// event's session.id.

//go:embed plugins/opencode.js
var openCodePluginSource string

//go:embed plugins/pi.ts
var piExtensionSource string

// pluginSpec is what difflore knows about an agent that loads plugins.
type pluginSpec struct {
	// source is the plugin file's text, with {{program}}, {{agent}} and
	// {{autostart}} to fill in.
	source string
	// file is the plugin's name in the plugin folder.
	file string
	// userDir is the user's plugin folder; projectDir the one in a
	// project.
	userDir    func(getenv func(string) string, userHome string) string
	projectDir string
	// events are the events the plugin hands over, in kind order, for
	// status (the lists in the plugin sources).
	events []string
}

// pluginMarker is in the first line of every plugin file difflore writes:
// a file without it is the user's, and install and uninstall leave it be.
const pluginMarker = "// difflore: written by 'difflore hooks install "

// openCodeEvents are the events plugins/opencode.js hands over: OpenCode
// 1.18.33's bus events and plugin hooks (the event types defined in its
// release binary, the hook names it triggers; opencode.ai/docs/plugins),
// and the same names in Kilo CLI 7.7.7, which is built from OpenCode.
var openCodeEvents = []string{
	"session.created", "session.deleted", "session.error", "session.idle", "session.compacted",
	"message.updated", "permission.asked", "permission.replied", "question.asked",
	"file.edited", "command.executed", "todo.updated",
	"chat.message", "tool.execute.before", "tool.execute.after",
}

// piEvents are the events plugins/pi.ts hands over: Pi 0.73.1's extension
// events (docs/extensions.md in @mariozechner/pi-coding-agent 0.73.1).
var piEvents = []string{
	"session_start", "input", "agent_start", "turn_start", "tool_call", "tool_result",
	"turn_end", "agent_end", "session_compact", "model_select", "user_bash", "session_shutdown",
}

// xdgConfigDir is the folder OpenCode and Kilo keep their configuration
// in, name under XDG_CONFIG_HOME or ~/.config, on every OS (they use
// xdg-basedir, which falls back to ~/.config on Windows too).
func xdgConfigDir(getenv func(string) string, userHome, name string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, name)
	}
	return filepath.Join(userHome, ".config", name)
}

// pluginPath is the plugin file of agent a: the user's, or the project's
// under project when it is set.
func (a agentSpec) pluginPath(getenv func(string) string, project string) (string, error) {
	if project != "" {
		dir, err := filepath.Abs(project)
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, a.plugin.projectDir, a.plugin.file), nil
	}
	userHome, err := userHomeDir(getenv)
	if err != nil {
		return "", fmt.Errorf("find the home folder: %w", err)
	}
	return filepath.Join(a.plugin.userDir(getenv, userHome), a.plugin.file), nil
}

// pluginProgram is the difflore the plugin runs: --command as given (a
// bare name is looked up on PATH by spawnSync), or this difflore's
// absolute path.
func (o hookOptions) pluginProgram() (string, error) {
	if o.command != "" {
		return o.command, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return exe, nil
}

// jsString is s as a JavaScript string literal. JSON's string syntax is a
// subset of JavaScript's (U+2028 and U+2029 included, since ES2019, and
// encoding/json escapes them anyway), so no character of a path can end
// the literal or be read back differently.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// renderPlugin is the plugin file of agent a that runs program.
func (a agentSpec) renderPlugin(program string, autostart bool) []byte {
	auto := "no"
	if autostart {
		auto = "yes"
	}
	return []byte(strings.NewReplacer(
		`"{{program}}"`, jsString(program),
		`"{{agent}}"`, jsString(a.name),
		`"{{autostart}}"`, jsString(auto),
		`{{agent}}`, a.name,
	).Replace(a.plugin.source))
}

// pluginFileProgram reads back the program a plugin file of difflore's
// runs, empty when it names none.
func pluginFileProgram(data []byte) string {
	const decl = "\nconst program = "
	i := bytes.Index(data, []byte(decl))
	if i < 0 {
		return ""
	}
	var prog string
	if json.NewDecoder(bytes.NewReader(data[i+len(decl):])).Decode(&prog) != nil {
		return ""
	}
	return prog
}

// isOurPlugin reports whether a file's text is a plugin difflore wrote.
func isOurPlugin(data []byte) bool { return bytes.HasPrefix(data, []byte(pluginMarker)) }

// pluginInstaller is the installer of the plugin agents.
func pluginInstaller() *hookInstaller {
	return &hookInstaller{print: pluginPrint, install: pluginInstall, uninstall: pluginUninstall,
		status: func(cfg config, a agentSpec, project string) (string, bool, string) {
			return a.pluginStatus(cfg, project)
		}}
}

// pluginPrint prints the plugin file install would write (stdout) and where
// it goes (stderr).
func pluginPrint(cfg config, a agentSpec, opts hookOptions) error {
	program, err := opts.pluginProgram()
	if err != nil {
		return err
	}
	path, err := a.pluginPath(cfg.getenv, "")
	if err != nil {
		path = filepath.Join("~", a.plugin.projectDir, a.plugin.file)
	}
	fmt.Fprintf(cfg.stderr, "difflore: %s plugin: save as %s (or run 'difflore hooks install %s')\n", a.name, path, a.name)
	_, err = cfg.stdout.Write(a.renderPlugin(program, opts.autostart))
	return err
}

// pluginInstall writes the agent's plugin file, atomically, keeping a copy
// of a file of difflore's it replaces; a file of the same name that is not
// difflore's is left as it is.
func pluginInstall(cfg config, a agentSpec, opts hookOptions, project string, dryRun bool) error {
	program, err := opts.pluginProgram()
	if err != nil {
		return err
	}
	path, err := a.pluginPath(cfg.getenv, project)
	if err != nil {
		return err
	}
	f, err := readSettings(path)
	if err != nil {
		return err
	}
	if f.exists && !isOurPlugin(f.data) {
		return &exitError{code: 1, err: fmt.Errorf("%s is not a plugin difflore wrote, so it was left as it is", path),
			hint: "move it aside and run 'difflore hooks install " + a.name + "' again"}
	}
	out := a.renderPlugin(program, opts.autostart)
	if f.exists && bytes.Equal(f.data, out) {
		fmt.Fprintf(cfg.stdout, "%s plugin already installed in %s; nothing changed\n", a.name, path)
		return nil
	}
	backup, err := f.commitEdit(cfg, out, true, false, dryRun)
	if err != nil {
		return err
	}
	if dryRun {
		fmt.Fprintf(cfg.stderr, "difflore: dry run: %s was not written\n", path)
		return nil
	}
	fmt.Fprintf(cfg.stdout, "installed the %s plugin (%s) in %s\n", a.name, plural(len(a.plugin.events), "event"), path)
	if backup != "" {
		fmt.Fprintf(cfg.stdout, "the file as it was: %s\n", backup)
	}
	if !programExists(program) {
		fmt.Fprintf(cfg.stderr, "difflore: warning: the plugin runs %s, which is not there; every event will be lost until it is\n", program)
	}
	return nil
}

// pluginUninstall removes the agent's plugin file, when it is difflore's,
// and the folders install made for it, when they are empty.
func pluginUninstall(cfg config, a agentSpec, project string, dryRun bool) error {
	path, err := a.pluginPath(cfg.getenv, project)
	if err != nil {
		return err
	}
	f, err := readSettings(path)
	if err != nil {
		return err
	}
	if !f.exists || !isOurPlugin(f.data) {
		fmt.Fprintf(cfg.stdout, "no difflore plugin in %s; nothing changed\n", path)
		return nil
	}
	if dryRun {
		if err := f.showDiff(cfg, nil, true); err != nil {
			return err
		}
		fmt.Fprintf(cfg.stderr, "difflore: dry run: %s was not removed\n", path)
		return nil
	}
	var dirs []string
	if rec := readRestoreRecord(cfg, f.target); rec != nil && !rec.Existed {
		dirs = rec.Dirs
	}
	backup, err := applyUninstall(cfg, f, uninstallPlan{remove: true, dirs: dirs})
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.stdout, "removed the %s plugin %s\n", a.name, path)
	if backup != "" {
		fmt.Fprintf(cfg.stdout, "the file as it was: %s\n", backup)
	}
	return nil
}

// pluginStatus is the agent's line of 'hooks status': whether difflore's
// plugin is there, and whether the program it runs exists.
func (a agentSpec) pluginStatus(cfg config, project string) (string, bool, string) {
	path, err := a.pluginPath(cfg.getenv, project)
	if err != nil {
		return err.Error(), false, ""
	}
	data, err := readSettingsData(path)
	if errors.Is(err, os.ErrNotExist) {
		return "not wired (" + path + " does not exist)", true, ""
	}
	if err != nil {
		return "cannot read the plugin: " + err.Error(), false, ""
	}
	if !isOurPlugin(data) {
		return "not wired (" + path + " is not difflore's)", true, ""
	}
	program := pluginFileProgram(data)
	line := fmt.Sprintf("wired, a plugin handing over %s, in %s", plural(len(a.plugin.events), "event"), path)
	switch {
	case program == "":
		return line + "; names no program", false, "run 'difflore hooks install " + a.name + "' to write it again"
	case !programExists(program):
		return line + "; runs " + program + ", which does not exist", false, "run 'difflore hooks install " + a.name + "' to point it at this difflore"
	}
	line += "; runs " + program
	// A plugin an older or newer difflore wrote still hands events over;
	// install writes this version's.
	if !bytes.Equal(data, a.renderPlugin(program, bytes.Contains(data, []byte(`const autostart = "yes"`)))) {
		line += "; written by another difflore version ('difflore hooks install " + a.name + "' updates it)"
	}
	return line, true, ""
}
