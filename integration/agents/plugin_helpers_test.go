package agents

// The plugin agents' tests run OpenCode, Kilo and Pi as npm installs them,
// not logged in, in a fresh home, with the plugin file 'difflore hooks
// install' wrote, and read the events they handed over back through a
// file: endpoint. Each test builds difflore from the repository root and
// installs its agent with npm into a temporary folder; nothing is
// installed globally and the user's home is never touched.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pluginDifflore builds difflore from the repository root into a folder of
// the test's, off PATH, and returns its path.
func pluginDifflore(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "difflore")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build difflore: %v\n%s", err, out)
	}
	return bin
}

// pluginNpmInstall installs spec (name@version) with npm into a temporary
// folder and returns the path of its program bin.
func pluginNpmInstall(t *testing.T, spec, bin string) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("needs npm: the agents are installed from npm; .ci/run installs it")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error", spec)
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, ".npm-cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", spec, err, out)
	}
	path := filepath.Join(dir, "node_modules", ".bin", bin)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("npm install %s: no %s: %v", spec, bin, err)
	}
	return path
}

// pluginHome is a fresh account: a user home, a project folder in it and
// a difflore data home, with the environment an agent started there has.
type pluginHome struct {
	user, project, data string
	difflore            string
}

func newPluginHome(t *testing.T, difflore string) *pluginHome {
	t.Helper()
	root := t.TempDir()
	h := &pluginHome{user: filepath.Join(root, "user"), data: filepath.Join(root, "difflore"), difflore: difflore}
	h.project = filepath.Join(h.user, "project")
	if err := os.MkdirAll(h.project, 0o700); err != nil {
		t.Fatal(err)
	}
	return h
}

// env is the environment of the agent and of difflore: a fresh HOME, no
// credentials, and a PATH without difflore on it (the plugin runs the
// absolute path install wrote into it).
func (h *pluginHome) env() []string {
	env := []string{
		"HOME=" + h.user, "USERPROFILE=" + h.user,
		"DIFFLORE_HOME=" + h.data,
		"PATH=" + filepath.Dir(pluginNode()) + string(os.PathListSeparator) + "/usr/bin:/bin",
		"LANG=C.UTF-8", "TERM=dumb", "CI=true", "NO_COLOR=1",
	}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	return env
}

// pluginNode is the node on PATH (npm's shims run it), or "node".
func pluginNode() string {
	if p, err := exec.LookPath("node"); err == nil {
		return p
	}
	return "node"
}

// run runs name with args in the home's project folder, bounded, and
// returns what it printed; the exit code is the agent's business (not
// logged in, a run ends in an error).
func (h *pluginHome) run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = h.project, h.env()
	cmd.Stdin = strings.NewReader("")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %v: %v\n%s", name, strings.Join(args, " "), timeout, err, out)
	}
	return string(out)
}

// difflore runs difflore with args in the home and fails the test when it
// fails.
func (h *pluginHome) runDifflore(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.difflore, args...)
	cmd.Dir, cmd.Env = h.project, h.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("difflore %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeFile writes data at rel under the user's home.
func (h *pluginHome) writeFile(t *testing.T, rel, data string) {
	t.Helper()
	path := filepath.Join(h.user, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pluginEvent is one event as a file: endpoint writes it.
type pluginEvent struct {
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
}

// sessionID is the payload's sessionID, the field difflore reads as the
// event's session.id.
func (e pluginEvent) sessionID() string {
	var p struct {
		SessionID string `json:"sessionID"`
	}
	json.Unmarshal(e.Payload, &p)
	return p.SessionID
}

// drained delivers the home's outbox to a file: endpoint on the local
// disk and returns the events in the order they were handed over.
func (h *pluginHome) drained(t *testing.T) []pluginEvent {
	t.Helper()
	sink := filepath.Join(h.user, "..", "sink.jsonl")
	h.runDifflore(t, "drain", "--endpoint", "file:"+filepath.ToSlash(sink))
	data, err := os.ReadFile(sink)
	if err != nil {
		t.Fatalf("nothing delivered: %v", err)
	}
	var out []pluginEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var e pluginEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("sink line %q: %v", sc.Bytes(), err)
		}
		out = append(out, e)
	}
	return out
}

// pluginKinds lists the kinds of events, in order.
func pluginKinds(events []pluginEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Kind)
	}
	return out
}

// pluginNotLoggedIn is an OpenAI-compatible model endpoint on loopback that
// refuses every request as a provider refuses a missing key: the agent
// makes its model call, which fails at once and for good (a 401 is not
// retried), so the run ends as fast as it can.
func pluginNotLoggedIn(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"message":"not logged in","type":"invalid_request_error","code":"invalid_api_key"}}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// pluginOpenCodeConfig is an OpenCode (or Kilo) configuration whose one model
// is the loopback endpoint at baseURL.
func pluginOpenCodeConfig(baseURL string) string {
	return `{"provider":{"loopback":{"npm":"@ai-sdk/openai-compatible","name":"loopback",` +
		`"options":{"baseURL":"` + baseURL + `","apiKey":"none"},"models":{"m":{"name":"m"}}}},` +
		`"model":"loopback/m"}`
}
