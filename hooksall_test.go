package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestHooksInstallAll: install --all wires the agents found (a program on
// PATH, a settings folder that exists), through each agent's own
// installer (Cline's executables included), says which it found and why,
// and names each one it skipped with why; the others' files are not made.
func TestHooksInstallAll(t *testing.T) {
	testHome(t)
	userHome := setUserHome(t)
	bin := t.TempDir()
	qwen := filepath.Join(bin, "qwen")
	if runtime.GOOS == "windows" {
		qwen += ".exe"
	}
	if err := os.WriteFile(qwen, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	for _, d := range []string{".factory", ".cline"} {
		if err := os.Mkdir(filepath.Join(userHome, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := mustCLI(t, "hooks", "install", "--all", "--command", "/opt/difflore/difflore")
	for _, want := range []string{
		"qwen: found (" + qwen + " is on PATH)",
		"droid: found (" + filepath.Join(userHome, ".factory") + " exists)",
		"cline: found (" + filepath.Join(userHome, ".cline") + " exists)",
		"skipped claude: no claude on PATH, no " + filepath.Join(userHome, ".claude"),
		"skipped copilot: no copilot on PATH, no " + filepath.Join(userHome, ".copilot"),
		"wired: qwen, droid, cline",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install --all does not say %q:\n%s", want, out)
		}
	}
	for _, p := range []string{".qwen/settings.json", ".factory/hooks.json", ".cline/hooks/TaskStart"} {
		if _, err := os.Stat(filepath.Join(userHome, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{".claude", ".copilot", ".gemini", ".codex", ".cursor", ".augment", ".codeium"} {
		if _, err := os.Stat(filepath.Join(userHome, p)); err == nil {
			t.Errorf("%s was made for an agent not found", p)
		}
	}
	if _, stderr, code := cli(t, "", "hooks", "install", "--all", "claude"); code != 2 {
		t.Errorf("--all with an agent: exit %d, %s", code, stderr)
	}
}
