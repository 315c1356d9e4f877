package main

import (
	"strings"
)

// subcommandHelp is what a subcommand's -h says of it beyond what its
// parent's usage text holds: its usage lines and examples are taken from
// the parent's text (the lines that name it), so that the two cannot
// disagree, and its flags from its own flag set (newFlagSet).
type subcommandHelp struct {
	name string // "hooks install"
	text string // what it does
}

// subcommands is the table of the subcommands that have their own -h. The
// default subcommand of outbox, list, is not in it: 'outbox -h' is its
// help.
func subcommands() []subcommandHelp {
	return []subcommandHelp{
		{"hooks print", `Prints the hook configuration of AGENT, to merge by hand, on standard
output, and names the file it belongs in on standard error.`},
		{"hooks install", `Merges difflore's hooks into AGENT's user settings file, or a project's
with --project: other keys and hooks are kept, a second install changes
nothing, and a copy of the file as it was is kept in the data home
(backups/, the last 5 per file). With --trust, Codex's config.toml trusts
difflore's hooks, so that Codex runs them. With --all, every agent found on
this machine is wired, and those skipped are named, with why.`},
		{"hooks uninstall", `Gives AGENT's settings file back as it was before install, byte for
byte, or removes it when install made it; a file changed since loses
difflore's hooks and nothing else.`},
		{"hooks status", `Says, for AGENT or for every agent, whether its hooks are wired, whether
the program they run exists, whether the agent runs them and which of the
wired events the installed version of the agent fires; exit 1 when events
would be lost.`},
		{"config get", `Prints the value in force of KEY: the environment's, else config.toml's,
else the default. The token is printed only with --show-token.`},
		{"config set", `Sets KEY to VALUE in config.toml, checking it first; the file's other
lines and comments are kept. For the token, VALUE - reads it from standard
input. An endpoint no daemon would use, plain http to a host that is not
loopback, needs 'difflore config set allow_insecure true' first.

KEY is one of these, which 'difflore config -h' explains:
  ` + setKeyNames() + `.`},
		{"config unset", `Removes KEY from config.toml: the environment's value, or the default,
applies again.`},
		{"config list", `Prints every key with its value in force and where it came from:
(default), (file) or (env: VARIABLE); the token only as "(set, file)" or
"(set, env)".`},
		{"config path", `Prints where config.toml of this data home is, whether or not it exists.`},
		{"outbox show", `Prints the payload of the event ID exactly as stored on standard output,
and its state, attempts and last error on standard error.`},
		{"outbox retry", `Puts dead letters back in the queue with their attempts reset, and makes
events that wait for a retry ready now: those named by ID, or all with
--all. An ID that names no event is an error, and then nothing is retried.
With --sink NAME, for that sink alone; else for every sink.`},
		{"outbox purge", `Deletes the dead letters for good; --dead --yes say that this is meant.
With --sink NAME, that sink's alone; else every sink's.`},
		{"service print", `Writes the service definition to standard output: a systemd user unit,
a launchd LaunchAgent, or a PowerShell script that registers an at-log-on
scheduled task for this user on Windows.`},
		{"service install", `Writes the service definition and loads it with the service manager, so
that the daemon of this data home starts at log-in (or boot) and restarts
when it fails. When the manager refuses it (no user session), nothing is
left installed.`},
		{"service uninstall", `Stops and unloads the service and removes its definition, and says which
of these happened.`},
	}
}

// findSubcommand is the subcommand of that name ("hooks install"), if it
// has its own help.
func findSubcommand(name string) (subcommandHelp, bool) {
	for _, s := range subcommands() {
		if s.name == name {
			return s, true
		}
	}
	return subcommandHelp{}, false
}

// usage is the subcommand's -h, but its flags: its usage lines and
// examples, those of parent (its parent's usage text) that name it, and
// what it does.
func (s subcommandHelp) usage(parent string) string {
	var lines, examples []string
	inExamples := false
	for _, l := range strings.Split(parent, "\n") {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "Usage:"))
		if strings.HasPrefix(l, "Examples:") {
			inExamples = true
			continue
		}
		names := t == "difflore "+s.name || strings.HasPrefix(t, "difflore "+s.name+" ")
		switch {
		case inExamples && strings.Contains(l, "difflore "+s.name):
			examples = append(examples, l)
		case !inExamples && names:
			lines = append(lines, t)
		}
	}
	var b strings.Builder
	if len(lines) == 1 {
		b.WriteString("Usage: " + lines[0] + "\n")
	} else {
		b.WriteString("Usage:\n")
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	b.WriteString("\n" + s.text + "\n")
	if len(examples) > 0 {
		b.WriteString("\nExamples:\n" + strings.Join(examples, "\n") + "\n")
	}
	return b.String()
}

// setKeyNames lists the keys config set handles, from the table it checks
// values with.
func setKeyNames() string {
	var names []string
	for _, k := range configKeys() {
		if k.literal != nil {
			names = append(names, k.name)
		}
	}
	return strings.Join(names, ", ")
}
