package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestClineScriptsDeliverPayloads installs Cline's hooks for a difflore
// whose path has a space and runs each executable install wrote, as Cline
// runs it (the file itself, the event's payload on standard input): each
// exits 0 with nothing on stdout or stderr, and every payload of Cline
// 3.0.65 reaches the endpoint byte for byte as cline.<event>, with its
// taskId as session.id.
func TestClineScriptsDeliverPayloads(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Cline runs its hook scripts in Git Bash on Windows, which the Windows test run has not")
	}
	t.Parallel()
	env := newTestEnv(t)
	home := env.home
	userHome := t.TempDir()
	bin := hookBinary(t)
	install := exec.Command(bin, "hooks", "install", "cline")
	install.Env = hookEnv(home, userHome)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("hooks install cline: %v\n%s", err, out)
	}
	a, _ := findAgent("cline")
	want := map[string][]byte{}
	for _, p := range hookPayloads(t) {
		if p.agent != "cline" {
			continue
		}
		script := filepath.Join(userHome, ".cline", "hooks", p.event)
		cmd := exec.Command(script)
		cmd.Env = hookEnv(home, userHome)
		cmd.Stdin = bytes.NewReader(p.data)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runBounded(t, cmd); err != nil || stdout.Len() > 0 || stderr.Len() > 0 {
			t.Errorf("%s: %v\nstdout: %q\nstderr: %q", script, err, stdout.Bytes(), stderr.Bytes())
		}
		want["cline."+p.event] = p.data
	}
	if len(want) < 5 {
		t.Fatalf("%d Cline payloads in testdata/hooks, want the 5 of Cline 3.0.65", len(want))
	}
	ep := newEndpoint(t, nil)
	env.mustCLI("drain", "--endpoint", ep.URL)
	got := 0
	for _, r := range ep.requests() {
		for _, e := range r.batch.Events {
			got++
			if !bytes.Equal(e.Payload, want[e.Kind]) {
				t.Errorf("%s: delivered\n%s\nwant\n%s", e.Kind, e.Payload, want[e.Kind])
			}
			var v struct{ TaskID string }
			json.Unmarshal(e.Payload, &v)
			if id := sessionID(e.Payload); id == "" || id != v.TaskID {
				t.Errorf("%s: session.id %q, want the taskId %q", e.Kind, id, v.TaskID)
			}
		}
	}
	if got != len(want) {
		t.Errorf("delivered %d events, want %d", got, len(want))
	}
	_ = a
}

// TestClineInstall installs Cline's hooks beside a hook of the user's own
// on one event: that file is left as it is and the event not wired, with a
// warning; a second install changes nothing; a move of difflore rewrites
// the scripts; status reads them; uninstall leaves only the user's file.
func TestClineInstall(t *testing.T) {
	testHome(t)
	userHome := setUserHome(t)
	dir := filepath.Join(userHome, ".cline", "hooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := []byte("#!/bin/sh\necho '{\"cancel\":false}'\n")
	if err := os.WriteFile(filepath.Join(dir, "TaskStart"), mine, 0o755); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "hooks", "install", "--dry-run", "--command", "/opt/difflore/difflore", "cline")
	if !strings.Contains(out, "+exec /opt/difflore/difflore enqueue --kind cline.TaskComplete") {
		t.Errorf("dry run shows no change:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "TaskComplete")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dry run wrote a script: %v", err)
	}
	stdout, stderr, code := cli(t, "", "hooks", "install", "--command", "/opt/difflore/difflore", "cline")
	if code != 0 || !strings.Contains(stdout, "installed 8 cline hooks") || !strings.Contains(stderr, "TaskStart is not wired") {
		t.Errorf("install: exit %d\n%s%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "TaskStart")); !bytes.Equal(b, mine) {
		t.Errorf("the user's TaskStart hook changed:\n%s", b)
	}
	fi, err := os.Stat(filepath.Join(dir, "TaskComplete"))
	if err != nil || runtime.GOOS != "windows" && fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("TaskComplete: %v %v, want an executable", fi, err)
	}
	if out := mustCLI(t, "hooks", "install", "--command", "/opt/difflore/difflore", "cline"); !strings.Contains(out, "nothing changed") {
		t.Errorf("second install: %s", out)
	}
	mustCLI(t, "hooks", "install", "--command", "/usr/local/bin/difflore", "cline")
	stdout, _, _ = cli(t, "", "hooks", "status", "cline")
	if !strings.Contains(stdout, "partly wired, 8 of 9 events") || !strings.Contains(stdout, "runs /usr/local/bin/difflore, which does not exist") {
		t.Errorf("status:\n%s", stdout)
	}
	mustCLI(t, "hooks", "uninstall", "cline")
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "TaskStart" {
		t.Errorf("after uninstall %s holds %v, want only the user's TaskStart", dir, entries)
	}
}

// TestAugmentHooks installs Auggie's hooks for a difflore whose path has a
// space and runs them as Auggie 0.36 does: the command, a .sh file, run
// without a shell with the hook's args. Each payload arrives byte for byte
// as augment.<event>, with its conversation_id as session.id; a second
// install changes nothing; uninstall leaves the user's settings and no
// script.
func TestAugmentHooks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Auggie runs its .sh hooks with bash.exe on Windows, which the Windows test run has not")
	}
	t.Parallel()
	env := newTestEnv(t)
	home := env.home
	userHome := t.TempDir()
	bin := hookBinary(t)
	settings := filepath.Join(userHome, ".augment", "settings.json")
	if err := os.MkdirAll(filepath.Dir(settings), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := []byte(handFormatted["augment"])
	if err := os.WriteFile(settings, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = hookEnv(home, userHome)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("hooks", "install", "augment")
	if out := run("hooks", "install", "augment"); !strings.Contains(out, "nothing changed") {
		t.Errorf("second install: %s", out)
	}
	a, _ := findAgent("augment")
	doc, err := parseJSON(readFixture(t, settings))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, p := range hookPayloads(t) {
		if p.agent != "augment" {
			continue
		}
		var command string
		var args []string
		a.eachHook(a.hooksObject(doc).get(p.event), func(h *jsonValue) {
			if a.isOurHook(h) {
				command, _ = h.get("command").str()
				for _, v := range h.get("args").elems {
					s, _ := v.str()
					args = append(args, s)
				}
			}
		})
		if !strings.HasSuffix(command, ".sh") {
			t.Fatalf("%s: command %q, want a .sh path", p.event, command)
		}
		cmd := exec.Command(command, args...)
		cmd.Env = hookEnv(home, userHome)
		cmd.Stdin = bytes.NewReader(p.data)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runBounded(t, cmd); err != nil || stdout.Len() > 0 || stderr.Len() > 0 {
			t.Errorf("%s %v: %v\nstdout: %q\nstderr: %q", command, args, err, stdout.Bytes(), stderr.Bytes())
		}
		want["augment."+p.event] = p.data
	}
	if len(want) < 3 {
		t.Fatalf("%d Auggie payloads in testdata/hooks, want 3", len(want))
	}
	ep := newEndpoint(t, nil)
	env.mustCLI("drain", "--endpoint", ep.URL)
	got := 0
	for _, r := range ep.requests() {
		for _, e := range r.batch.Events {
			got++
			if !bytes.Equal(e.Payload, want[e.Kind]) || sessionID(e.Payload) != "c0ffee00-1111-4222-8333-444455556666" {
				t.Errorf("%s: delivered\n%s\nsession.id %q", e.Kind, e.Payload, sessionID(e.Payload))
			}
		}
	}
	if got != len(want) {
		t.Errorf("delivered %d events, want %d", got, len(want))
	}
	run("hooks", "uninstall", "augment")
	if b := readFixture(t, settings); !bytes.Equal(b, mine) {
		t.Errorf("after uninstall:\n%s\nwant\n%s", b, mine)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(settings), "difflore-hook.sh")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the script is still there: %v", err)
	}
}
