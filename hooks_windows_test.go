package main

import (
	"os"
	"os/exec"
	"syscall"
)

// hookShells returns the ways the agents run a hook command on Windows that
// a test can reproduce: cmd.exe /C with the command as one argument quoted
// the C runtime's way (Codex, through Rust's Command, as Go's does), and
// cmd.exe /d /s /c "…" written verbatim (Node's shell: true, as in
// Cursor). PowerShell and Git Bash, which Gemini CLI and Claude Code use,
// are not there to run; the command form is the same plain word for them.
func hookShells(command string) map[string]*exec.Cmd {
	comspec := os.Getenv("ComSpec")
	if comspec == "" {
		comspec = "cmd.exe"
	}
	node := exec.Command(comspec)
	node.SysProcAttr = &syscall.SysProcAttr{CmdLine: `cmd.exe /d /s /c "` + command + `"`}
	return map[string]*exec.Cmd{
		"cmd /C (Codex)":         exec.Command(comspec, "/C", command),
		"cmd /d /s /c (Node.js)": node,
	}
}
