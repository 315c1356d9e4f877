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
	// Kiro's ~/.kiro says it ran here, not which workspaces to wire.
	for _, d := range []string{".factory", ".cline", ".kiro"} {
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
		"skipped kiro: its hooks are per workspace: run 'difflore hooks install --project DIR kiro' in each",
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

// TestHooksUninstallAll: uninstall --all gives back every file of every
// agent whose hooks are wired, byte for byte (a file install made is
// removed), names each agent it unwired, leaves the others alone, and
// install --all then uninstall --all leaves the home as it was; an install
// without --autostart says that a daemon must run for events to leave.
func TestHooksUninstallAll(t *testing.T) {
	testHome(t)
	userHome := setUserHome(t)
	t.Setenv("PATH", t.TempDir())
	for _, d := range []string{".factory", ".cline", ".config/opencode"} {
		if err := os.MkdirAll(filepath.Join(userHome, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	settings := filepath.Join(userHome, ".factory", "hooks.json")
	before := []byte("{\n    \"theme\": \"dark\"\n}\n")
	if err := os.WriteFile(settings, before, 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "hooks", "install", "--all", "--command", "/opt/difflore/difflore")
	if !strings.Contains(out, "--autostart") || !strings.Contains(out, "difflore run --detach") {
		t.Errorf("install --all without --autostart does not say how events will leave:\n%s", out)
	}
	out = mustCLI(t, "hooks", "uninstall", "--all")
	for _, want := range []string{"unwired: droid, cline, opencode", "skipped claude: not wired"} {
		if !strings.Contains(out, want) {
			t.Errorf("uninstall --all does not say %q:\n%s", want, out)
		}
	}
	if data, err := os.ReadFile(settings); err != nil || string(data) != string(before) {
		t.Errorf("droid's hooks.json after uninstall --all: %q, %v; want it as it was", data, err)
	}
	for _, p := range []string{".cline/hooks", ".config/opencode/plugins"} {
		if _, err := os.Stat(filepath.Join(userHome, p)); err == nil {
			t.Errorf("%s is still there after uninstall --all", p)
		}
	}
	if _, stderr, code := cli(t, "", "hooks", "uninstall", "--all", "claude"); code != 2 {
		t.Errorf("uninstall --all with an agent: exit %d, %s", code, stderr)
	}
}

// TestHooksPrintStatusAll: print --all and status --all, which the design
// lists beside install --all and uninstall --all, cover every agent: print
// --all prints each agent's hooks under a line naming it, status --all is
// status of every agent (of a project's, with --project); neither takes an
// agent beside --all.
func TestHooksPrintStatusAll(t *testing.T) {
	testHome(t)
	setUserHome(t)
	out := mustCLI(t, "hooks", "print", "--all", "--command", "/opt/difflore/difflore")
	for _, a := range agents {
		if !strings.Contains(out, "# "+a.name+": ") {
			t.Errorf("print --all has no section for %s", a.name)
		}
		want := "enqueue --kind " + a.name + "."
		if a.script != "" {
			want = `"` + a.name + "." + a.events[0] + `"`
		}
		if a.plugin != nil {
			want = "difflore"
		}
		if !strings.Contains(out, want) {
			t.Errorf("print --all does not print %s's hooks (%q)", a.name, want)
		}
	}
	all := mustCLI(t, "hooks", "status", "--all")
	if each := mustCLI(t, "hooks", "status"); all != each {
		t.Errorf("status --all:\n%s\nstatus:\n%s", all, each)
	}
	project := t.TempDir()
	mustCLI(t, "hooks", "install", "--project", project, "--command", "/opt/difflore/difflore", "kiro")
	out, _, _ = cli(t, "", "hooks", "status", "--all", "--project", project)
	if !strings.Contains(out, "wired, 2 of 2 events") {
		t.Errorf("status --all --project does not read the project:\n%s", out)
	}
	for _, sub := range []string{"print", "status"} {
		if _, stderr, code := cli(t, "", "hooks", sub, "--all", "claude"); code != 2 {
			t.Errorf("%s --all with an agent: exit %d, %s", sub, code, stderr)
		}
	}
}
