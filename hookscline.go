package main

import "strings"

// Cline 3.0.65 has no hooks file: it runs, for each event, the executable
// named after the event in its hooks folder (~/.cline/hooks/TaskStart, …;
// .clinerules/hooks/ in a project), handing it the event's JSON on
// standard input. difflore's hook for an event is a small sh script there
// that runs 'difflore enqueue' (an event has room for one executable
// only; see hooksfiles.go). On Windows the same script is written: Cline
// documents running hooks there through Git Bash or WSL; difflore has not
// seen it run there.

// clineFiles are Cline's hook files.
var clineFiles = &eventFiles{
	name:     func(event string) string { return event },
	content:  clineScript,
	commands: clineCommands,
	mode:     0o755,
}

// clineScript is difflore's executable for event.
func clineScript(a agentSpec, program, event string, autostart bool) []byte {
	return []byte("#!/bin/sh\n# difflore: " + a.display + "'s " + event + " hook; 'difflore hooks uninstall " + a.name + "' removes it.\nexec " +
		a.hookCommand(program, event, autostart) + "\n")
}

// clineCommands are the commands a script's exec lines run.
func clineCommands(data []byte) []string {
	var cmds []string
	for _, line := range strings.Split(string(data), "\n") {
		if cmd, ok := strings.CutPrefix(line, "exec "); ok {
			cmds = append(cmds, cmd)
		}
	}
	return cmds
}
