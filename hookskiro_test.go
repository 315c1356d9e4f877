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

// kiroPrompt is a prompt as a user types it into Kiro's chat, with what a
// shell or JSON could mangle: quotes, a dollar, a backslash, a newline,
// markup and text outside ASCII.
const kiroPrompt = "Rename `main` to \"run\"; keep $HOME & <b>C:\\temp</b>\nthen: café ✓"

// TestKiroHooksDeliverEvents installs Kiro's hooks into a workspace for a
// difflore whose path has a space, and runs the command each .kiro.hook
// file holds as Kiro's Shell Command action runs it (through sh, in the
// workspace, the prompt in USER_PROMPT, standard input left open): each
// exits 0 with nothing on stdout or stderr, and both events reach the
// endpoint as kiro.promptSubmit and kiro.agentStop, the prompt byte for
// byte, under one session.id. A hook run from another Kiro process gets
// another session.id.
func TestKiroHooksDeliverEvents(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hook commands are run through sh here")
	}
	t.Parallel()
	env := newTestEnv(t)
	home := env.home
	userHome := t.TempDir()
	project := t.TempDir()
	if p, err := filepath.EvalSymlinks(project); err == nil {
		project = p
	}
	bin := hookBinary(t)
	install := exec.Command(bin, "hooks", "install", "--project", project, "kiro")
	install.Env = hookEnv(home, userHome)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("hooks install kiro: %v\n%s", err, out)
	}
	fire := func(event string, wrap ...string) {
		t.Helper()
		fireKiroHook(t, hookEnv(home, userHome), project, event, wrap...)
	}
	fire("promptSubmit")
	fire("agentStop")
	ep := newEndpoint(t, nil)
	env.mustCLI("drain", "--endpoint", ep.URL)
	type kiroPayload struct {
		SessionID  string  `json:"session_id"`
		Cwd        string  `json:"cwd"`
		UserPrompt *string `json:"USER_PROMPT"`
	}
	got := map[string]kiroPayload{}
	for _, r := range ep.requests() {
		for _, e := range r.batch.Events {
			var p kiroPayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatalf("%s: %v: %s", e.Kind, err, e.Payload)
			}
			if id := sessionID(e.Payload); id == "" || id != p.SessionID {
				t.Errorf("%s: session.id %q, payload's session_id %q", e.Kind, id, p.SessionID)
			}
			if p.Cwd != project {
				t.Errorf("%s: cwd %q, want the workspace %q", e.Kind, p.Cwd, project)
			}
			got[e.Kind] = p
		}
	}
	ps, as := got["kiro.promptSubmit"], got["kiro.agentStop"]
	if len(got) != 2 || ps.UserPrompt == nil || *ps.UserPrompt != kiroPrompt || as.UserPrompt != nil {
		t.Fatalf("delivered %+v, want kiro.promptSubmit with the prompt and kiro.agentStop without", got)
	}
	if ps.SessionID == "" || ps.SessionID != as.SessionID {
		t.Errorf("one Kiro process, two session ids: %q, %q", ps.SessionID, as.SessionID)
	}

	// Another Kiro process: timeout runs sh as a child of its own, as a
	// second Kiro window would.
	if _, err := exec.LookPath("timeout"); err != nil {
		t.Skip("no timeout(1) to stand for a second Kiro process")
	}
	fire("agentStop", "timeout", "60")
	ep2 := newEndpoint(t, nil)
	env.mustCLI("drain", "--endpoint", ep2.URL)
	for _, r := range ep2.requests() {
		for _, e := range r.batch.Events {
			if id := sessionID(e.Payload); id == "" || id == ps.SessionID {
				t.Errorf("another Kiro process: session.id %q, the first's is %q", id, ps.SessionID)
			}
		}
	}
}

// TestKiroInstallRoundTrip installs Kiro's hooks into a workspace that
// already has a hook of the user's own and a steering file: --dry-run
// shows the change and writes nothing; install adds difflore's two files
// and touches nothing else; a second install changes nothing; status reads
// them; uninstall gives the workspace back byte for byte. In a workspace
// with no .kiro folder, uninstall removes the folders install made.
// Without --project, install refuses and status says why.
func TestKiroInstallRoundTrip(t *testing.T) {
	testHome(t)
	setUserHome(t)
	project := t.TempDir()
	hooks := filepath.Join(project, ".kiro", "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := []byte("{\n  \"enabled\": true,\n  \"name\": \"Lint\",\n  \"when\": {\"type\": \"fileEdited\", \"patterns\": [\"*.go\"]},\n  \"then\": {\"type\": \"runCommand\", \"command\": \"go vet ./...\"}\n}\n")
	if err := os.WriteFile(filepath.Join(hooks, "lint.kiro.hook"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(project, ".kiro", "steering"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, ".kiro", "steering", "tech.md"), []byte("# Go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, project)
	const prog = "/opt/difflore/difflore"

	out := mustCLI(t, "hooks", "install", "--dry-run", "--project", project, "--command", prog, "kiro")
	if !strings.Contains(out, `+    "command": "/opt/difflore/difflore enqueue --kind kiro.promptSubmit --env USER_PROMPT",`) {
		t.Errorf("dry run shows no change:\n%s", out)
	}
	compareSnapshots(t, "after a dry run", before, snapshot(t, project))
	if len(snapshot(t, project)) != len(before) {
		t.Errorf("a dry run wrote a file")
	}

	stdout, stderr, code := cli(t, "", "hooks", "install", "--project", project, "--command", prog, "kiro")
	if code != 0 || !strings.Contains(stdout, "installed 2 kiro hooks in "+hooks) || stderr != "" {
		t.Errorf("install: exit %d\n%s%s", code, stdout, stderr)
	}
	entries, _ := os.ReadDir(hooks)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "difflore-agentStop.kiro.hook difflore-promptSubmit.kiro.hook lint.kiro.hook" {
		t.Errorf("after install %s holds %v", hooks, names)
	}
	if out := mustCLI(t, "hooks", "install", "--project", project, "--command", prog, "kiro"); !strings.Contains(out, "nothing changed") {
		t.Errorf("second install: %s", out)
	}
	stdout, _, code = cli(t, "", "hooks", "status", "--project", project, "kiro")
	if code != 1 || !strings.Contains(stdout, "wired, 2 of 2 events") || !strings.Contains(stdout, "runs "+prog+", which does not exist") {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
	stdout, _, code = cli(t, "", "hooks", "status", "kiro")
	if code != 0 || !strings.Contains(stdout, "per workspace") {
		t.Errorf("status without --project: exit %d\n%s", code, stdout)
	}

	mustCLI(t, "hooks", "uninstall", "--project", project, "kiro")
	compareSnapshots(t, "after uninstall", before, snapshot(t, project))
	if n := len(snapshot(t, project)); n != len(before) {
		t.Errorf("after uninstall the workspace has %d entries, was %d", n, len(before))
	}

	// A workspace with no .kiro: uninstall leaves none.
	bare := t.TempDir()
	mustCLI(t, "hooks", "install", "--project", bare, "--command", prog, "kiro")
	mustCLI(t, "hooks", "uninstall", "--project", bare, "kiro")
	if _, err := os.Stat(filepath.Join(bare, ".kiro")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after uninstall: .kiro: %v, want it gone", err)
	}

	_, stderr, code = cli(t, "", "hooks", "install", "--command", prog, "kiro")
	if code != 2 || !strings.Contains(stderr, "--project") {
		t.Errorf("install without --project: exit %d\n%s", code, stderr)
	}
}

// TestEnqueueEnvAndArgument: --env and a JSON argument are two payloads;
// enqueue takes one.
func TestEnqueueEnvAndArgument(t *testing.T) {
	testHome(t)
	_, stderr, code := cli(t, "", "enqueue", "--strict", "--env", "USER_PROMPT", `{"a":1}`)
	if code != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

// fireKiroHook runs the command of difflore's hook file for event in the
// workspace project as Kiro's Shell Command action runs it: through sh, in
// the workspace, the prompt in USER_PROMPT on promptSubmit, standard input
// open and never written; wrap, when given, is a program that runs sh as a
// child of its own. It fails the test unless the hook exits 0 with nothing
// on stdout or stderr.
func fireKiroHook(t *testing.T, env []string, project, event string, wrap ...string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(project, ".kiro", "hooks", "difflore-"+event+".kiro.hook"))
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		When struct{ Type string }
		Then struct {
			Type, Command string
			Timeout       int
		}
	}
	if err := json.Unmarshal(data, &h); err != nil || h.When.Type != event || h.Then.Type != "runCommand" || h.Then.Timeout != hookTimeout {
		t.Fatalf("%s: %v\n%s", event, err, data)
	}
	argv := append(wrap, "sh", "-c", h.Then.Command)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = project
	cmd.Env = append(env, "PWD="+project)
	if event == "promptSubmit" {
		cmd.Env = append(cmd.Env, "USER_PROMPT="+kiroPrompt)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	cmd.Stdin = r
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runBounded(t, cmd); err != nil || stdout.Len() > 0 || stderr.Len() > 0 {
		t.Errorf("%s: %v\nstdout: %q\nstderr: %q", h.Then.Command, err, stdout.Bytes(), stderr.Bytes())
	}
}
