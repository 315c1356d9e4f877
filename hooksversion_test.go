package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeNpmAgent puts a program named bin on PATH as npm links it: a
// symlink into node_modules/PKG, whose package.json says version.
func fakeNpmAgent(t *testing.T, pkg, bin, version string) {
	t.Helper()
	prefix := t.TempDir()
	dir := filepath.Join(prefix, "node_modules", filepath.FromSlash(pkg))
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"`+pkg+`","version":"`+version+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The program fails if run: the version must come from package.json.
	if err := os.WriteFile(filepath.Join(dir, "bin", bin), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(prefix, "node_modules", ".bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "bin", bin), filepath.Join(binDir, bin)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", binDir)
}

// TestHooksStatusVersion: status says which wired events the installed
// release fires, from the agent's table: Claude Code 2.1.197 (what npm
// installs on Node 20) lacks three that difflore wires, 2.1.332 adds one
// difflore does not wire, and an agent not on PATH has an unknown version.
func TestHooksStatusVersion(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("npm links its programs with .cmd shims on Windows, not symlinks")
	}
	testHome(t)
	setUserHome(t)
	mustCLI(t, "hooks", "install", "--command", "/bin/sh", "claude")
	for _, c := range []struct{ version, want string }{
		{"2.1.197", "Claude Code 2.1.197 (" + "%" + ") fires 26 of the 29 wired events; not PreModelSwitch, PostModelSwitch, DirectoryAdded"},
		{"2.1.332", "Claude Code 2.1.332 (%) fires 29 of the 29 wired events; it also fires PreSkillShellCommand, which difflore does not wire"},
		{"2.1.328", "Claude Code 2.1.328 (%) fires 29 of the 29 wired events\n"},
		{"", "unknown version (not on PATH)"},
	} {
		if c.version != "" {
			fakeNpmAgent(t, "@anthropic-ai/claude-code", "claude", c.version)
		} else {
			t.Setenv("PATH", t.TempDir())
		}
		out := mustCLI(t, "hooks", "status", "claude")
		before, after, _ := strings.Cut(c.want, "%")
		if !strings.Contains(out, before) || !strings.Contains(out, after) {
			t.Errorf("claude %s: status says\n%s\nwant %q", c.version, out, c.want)
		}
	}
}
