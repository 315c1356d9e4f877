//go:build !windows

package main

import "os/exec"

// hookShells returns the ways the agents run a hook command here: every
// agent hands it to a POSIX shell with -c (Claude Code /bin/sh, Gemini CLI
// bash, Codex the login shell, Cursor sh).
func hookShells(command string) map[string]*exec.Cmd {
	return map[string]*exec.Cmd{"sh -c": exec.Command("/bin/sh", "-c", command)}
}
