package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// handFormatted are settings files as people write them by hand: other
// keys, odd spacing, objects on one line, comments where the agent reads
// JSONC (Claude Code, Cursor and Gemini CLI; Codex reads plain JSON), no
// final newline.
var handFormatted = map[string]string{
	"claude":   "// my Claude settings\n{\n\t\"model\":   \"opus\",  // the big one\n\t\"env\": {\"A\": \"1\"},\n\t\"hooks\": {\"Notification\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"notify.sh\"}]}]}\n}",
	"codex":    "{\"hooks\":{\"Stop\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"notify-send done\"}]}]},   \"x\" : 1}\n",
	"cursor":   "{ \"version\": 1, /* mine */ \"hooks\": { \"stop\": [ { \"command\": \"./done.sh\" } ] } }\n",
	"copilot":  "{\"version\":1,\"hooks\":{\"sessionEnd\":[{\"type\":\"command\",\"bash\":\"./bye.sh\"}]}}",
	"qwen":     "{\n  // Qwen Code\n  \"model\": {\"name\": \"qwen3-coder-plus\"},\n  \"hooks\": {\"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"done.sh\"}]}]}\n}\n",
	"augment":  "{\n  \"model\": \"sonnet\",\n  \"hooks\": {\"PreToolUse\": [{\"matcher\": \"launch-process\", \"hooks\": [{\"type\": \"command\", \"command\": \"/home/me/guard.sh\"}]}]}\n}\n",
	"droid":    "{ \"SessionEnd\": [ { \"hooks\": [ { \"type\": \"command\", \"command\": \"bye.sh\" } ] } ] }",
	"windsurf": "{\"hooks\": {\"post_write_code\": [{\"command\": \"fmt.sh\", \"show_output\": true}]}}\n",
	"gemini":   "{\n  // Gemini CLI, kept by hand\n  \"general\": {\"vimMode\": true},\n  \"ui\": {\"theme\": \"GitHub\"}, // trailing comma next\n}\n",
}

// handCodexConfig is a Codex config.toml of the user's, which install
// --trust appends to.
const handCodexConfig = "# my Codex settings\nmodel = \"o3\"   # fast\n\n[projects.\"/src/app\"]\ntrust_level = \"trusted\"\n"

// fileState is a file or folder as a snapshot holds it.
type fileState struct {
	dir  bool
	mode fs.FileMode
	data []byte
}

// snapshot is every file and folder under root, by path.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{dir: d.IsDir(), mode: fi.Mode()}
		if !d.IsDir() {
			if st.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[p] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareSnapshots reports every file or folder that is not as it was.
func compareSnapshots(t *testing.T, when string, was, now map[string]fileState) {
	t.Helper()
	for p, w := range was {
		n, ok := now[p]
		switch {
		case !ok:
			t.Errorf("%s: %s is gone", when, p)
		case w.dir != n.dir || (runtime.GOOS != "windows" && w.mode != n.mode):
			t.Errorf("%s: %s is %v, was %v", when, p, n.mode, w.mode)
		case !bytes.Equal(w.data, n.data):
			t.Errorf("%s: %s is\n%q\nwas\n%q", when, p, n.data, w.data)
		}
	}
	for p := range now {
		if _, ok := was[p]; !ok {
			t.Errorf("%s: %s was not there before install", when, p)
		}
	}
}

// writeHandFormatted puts the agent's settings as a user has them at path
// (handFormatted): for Cline, its hooks folder with a hook of the user's
// own on an event difflore wires; for Codex, a config.toml beside it.
func writeHandFormatted(t *testing.T, a agentSpec, path string) {
	t.Helper()
	if a.name == "cline" {
		if err := os.MkdirAll(path, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, a.events[0]), []byte("#!/bin/sh\necho mine\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(handFormatted[a.name]), 0o644); err != nil {
		t.Fatal(err)
	}
	if a.name == "codex" {
		if err := os.WriteFile(filepath.Join(filepath.Dir(path), "config.toml"), []byte(handCodexConfig), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHooksUninstallGivesFilesBack installs and uninstalls each agent's
// hooks (Codex's with --trust, which writes config.toml too) and checks
// that the user's home is, byte for byte and mode for mode, what it was
// before install: a file install created is gone, a hand-formatted file is
// as it was written, and no backup is left beside a settings file; the
// backups are in the data home, where install says.
func TestHooksUninstallGivesFilesBack(t *testing.T) {
	t.Parallel()
	exe := filepath.Join(t.TempDir(), "difflore")
	if err := os.WriteFile(exe, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.plugin != nil {
			continue // plugin agents: hooksplugin_test.go
		}
		if a.files != nil && a.files.perProject {
			continue // per workspace (Kiro): hookskiro_test.go
		}
		for _, existing := range []bool{false, true} {
			name := a.name + "/no-file"
			if existing {
				name = a.name + "/hand-formatted"
			}
			if existing && a.custom != nil && a.name != "cline" {
				continue // an agent of its own installer: its own tests say what is there before
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newTestEnv(t)
				home := e.home
				userHome := e.setUserHome()
				path, err := a.settingsPath(e.getenv, "")
				if err != nil {
					t.Fatal(err)
				}
				if existing {
					writeHandFormatted(t, a, path)
				}
				before := snapshot(t, userHome)
				args := []string{"hooks", "install", "--command", exe}
				if a.name == "codex" {
					args = append(args, "--trust")
				}
				out := e.mustCLI(append(args, a.name)...)
				if existing && a.custom == nil && !strings.Contains(out, "the file as it was: "+filepath.Join(home, "backups")) {
					t.Errorf("install does not say where the backup is in the data home:\n%s", out)
				}
				for p := range snapshot(t, userHome) {
					if strings.Contains(filepath.Base(p), ".bak") {
						t.Errorf("a backup beside the settings: %s", p)
					}
				}
				if existing && a.custom == nil {
					bk, _ := filepath.Glob(filepath.Join(home, "backups", "*", "*.bak"))
					if len(bk) == 0 {
						t.Errorf("no backup in the data home")
					}
				}
				e.mustCLI("hooks", "uninstall", a.name)
				compareSnapshots(t, "after uninstall", before, snapshot(t, userHome))
			})
		}
	}
}

// TestHooksBackupsBounded installs over and over a file that changes in
// between: the data home keeps only the last few backups of it.
func TestHooksBackupsBounded(t *testing.T) {
	home := testHome(t)
	setUserHome(t)
	a, _ := findAgent("gemini")
	path, _ := a.settingsPath(os.Getenv, "")
	for i := range maxBackups + 3 {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(`{"n": `+strings.Repeat("1", i+1)+`}`), 0o600); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, "hooks", "install", "--command", "difflore", a.name)
	}
	bk, _ := filepath.Glob(filepath.Join(home, "backups", "*", "*.bak"))
	if len(bk) != maxBackups {
		t.Errorf("%d backups, want %d: %v", len(bk), maxBackups, bk)
	}
}
