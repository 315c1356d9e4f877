package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// pluginAgents are the agents difflore wires with a plugin file.
func pluginAgents() []agentSpec {
	var out []agentSpec
	for _, a := range agents {
		if a.plugin != nil {
			out = append(out, a)
		}
	}
	return out
}

// pluginFixture is one payload of testdata/hooks/plugin-events: what a
// probe plugin received in the agent, as JSON.stringify wrote it.
type pluginFixture struct {
	file, agent, name string
	data              []byte
}

// pluginFixtureName is AGENT-VERSION.NAME.json, NAME holding dots.
var pluginFixtureName = regexp.MustCompile(`^([a-z]+)-[0-9]+(?:\.[0-9]+)*\.(.+)\.json$`)

func pluginFixtures(t *testing.T) []pluginFixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "hooks", "plugin-events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no payloads in testdata/hooks/plugin-events: %v", err)
	}
	var out []pluginFixture
	for _, f := range files {
		m := pluginFixtureName.FindStringSubmatch(filepath.Base(f))
		if m == nil {
			t.Fatalf("payload file %s is not named AGENT-VERSION.NAME.json", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pluginFixture{file: f, agent: m[1], name: m[2], data: data})
	}
	return out
}

// harnessPiSession is the session id the harness's Pi session manager
// gives (testdata/plugins/harness.mjs).
const harnessPiSession = "pi-session-harness"

// compactJSON is raw without white space between tokens: what
// JSON.stringify writes for the value JSON.parse read from raw.
func compactJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %s: %v", raw, err)
	}
	return b.String()
}

// pluginDelivery is what a plugin must hand over for one fixture.
type pluginDelivery struct {
	kind, payload, session string
}

// wantPluginDelivery is what a's plugin hands over for f, built from the
// fixture as the plugin's documented payload (hooksplugin.go), and false
// when the plugin does not wire f's event.
func wantPluginDelivery(t *testing.T, a agentSpec, f pluginFixture) (pluginDelivery, bool) {
	t.Helper()
	var typed struct {
		Type  string `json:"type"`
		Event struct {
			Type       string `json:"type"`
			Properties struct {
				SessionID string `json:"sessionID"`
			} `json:"properties"`
		} `json:"event"`
	}
	var pair []json.RawMessage
	var arg struct {
		Event json.RawMessage `json:"event"`
	}
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	switch {
	case a.name == "pi":
		json.Unmarshal(f.data, &typed)
		return pluginDelivery{kind: "pi." + typed.Type, session: harnessPiSession,
			payload: `{"sessionID":` + quote(harnessPiSession) + `,"event":` + compactJSON(t, f.data) + `}`}, slices.Contains(a.plugin.events, typed.Type)
	case strings.HasPrefix(f.name, "event."):
		if err := json.Unmarshal(f.data, &typed); err != nil || json.Unmarshal(f.data, &arg) != nil {
			t.Fatalf("%s: not an {event} argument: %v", f.file, err)
		}
		sid := typed.Event.Properties.SessionID
		return pluginDelivery{kind: a.name + "." + typed.Event.Type, session: sid,
			payload: `{"sessionID":` + quote(sid) + `,"event":` + compactJSON(t, arg.Event) + `}`}, slices.Contains(a.plugin.events, typed.Event.Type)
	}
	if err := json.Unmarshal(f.data, &pair); err != nil || len(pair) != 2 {
		t.Fatalf("%s: not an [input, output] pair: %v", f.file, err)
	}
	var input struct {
		SessionID string `json:"sessionID"`
	}
	json.Unmarshal(pair[0], &input)
	return pluginDelivery{kind: a.name + "." + f.name, session: input.SessionID,
		payload: `{"sessionID":` + quote(input.SessionID) + `,"input":` + compactJSON(t, pair[0]) + `,"output":` + compactJSON(t, pair[1]) + `}`}, slices.Contains(a.plugin.events, f.name)
}

// needNode returns the path of node, or skips: the plugins are
// JavaScript, loaded here as their hosts load them.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs node (Node 20): the plugin files are JavaScript; .ci/run installs it")
	}
	return node
}

// TestPluginsDeliverFixtures installs each plugin agent's plugin file for
// a difflore whose path has a space, loads that exact file in Node as its
// host does (testdata/plugins/harness.mjs), with no npm package beside it,
// and calls its hooks with the objects the agents passed a probe plugin
// (testdata/hooks/plugin-events): nothing is printed, the harness exits 0,
// every wired event reaches the endpoint byte for byte under its kind
// with its session.id, and the events the plugin does not wire are not
// handed over. It logs what one event costs the host: the time spent in
// the plugin's handler, one enqueue.
func TestPluginsDeliverFixtures(t *testing.T) {
	t.Parallel()
	node := needNode(t)
	e := newTestEnv(t)
	home := e.home
	bin := hookBinary(t)
	harness, err := filepath.Abs(filepath.Join("testdata", "plugins", "harness.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	fixtures := pluginFixtures(t)
	want := map[string]pluginDelivery{}
	for _, a := range pluginAgents() {
		userHome := t.TempDir()
		env := append(hookEnv(home, userHome), "XDG_CONFIG_HOME=", "PI_CODING_AGENT_DIR=")
		install := exec.Command(bin, "hooks", "install", a.name)
		install.Env = env
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("hooks install %s: %v\n%s", a.name, err, out)
		}
		plugin := filepath.Join(a.plugin.userDir(func(string) string { return "" }, userHome), a.plugin.file)
		data, err := os.ReadFile(plugin)
		if err != nil {
			t.Fatal(err)
		}
		if got := pluginFileProgram(data); got != bin {
			t.Errorf("%s: the plugin runs %q, want %q", a.name, got, bin)
		}
		// An empty node_modules beside it, as OpenCode may leave: the
		// plugin needs nothing from it.
		os.Mkdir(filepath.Join(filepath.Dir(plugin), "node_modules"), 0o700)
		host := "opencode"
		if a.name == "pi" {
			host = "pi"
		}
		report := filepath.Join(t.TempDir(), "report.json")
		args := []string{harness, host, plugin, report}
		for _, f := range fixtures {
			if f.agent != a.name {
				continue
			}
			abs, err := filepath.Abs(f.file)
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, abs)
			if d, ok := wantPluginDelivery(t, a, f); ok {
				want[d.kind] = d
			}
		}
		if len(args) == 4 {
			t.Errorf("no payload for %s in testdata/hooks/plugin-events", a.name)
			continue
		}
		cmd := exec.Command(node, args...)
		cmd.Env, cmd.Dir = env, t.TempDir()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runBounded(t, cmd); err != nil || stdout.Len() > 0 || stderr.Len() > 0 {
			t.Errorf("%s: node harness: %v\nstdout: %q\nstderr: %q", a.name, err, stdout.Bytes(), stderr.Bytes())
		}
		logPluginCost(t, a.name, report)
	}

	ep := newEndpoint(t, nil)
	e.mustCLI("drain", "--endpoint", ep.URL)
	got := map[string][]json.RawMessage{}
	for _, r := range ep.requests() {
		if r.err != nil {
			t.Fatalf("request: %v\n%s", r.err, r.raw)
		}
		for _, e := range r.batch.Events {
			got[e.Kind] = append(got[e.Kind], e.Payload)
		}
	}
	for kind, d := range want {
		if len(got[kind]) != 1 {
			t.Errorf("%s: delivered %d times, want once", kind, len(got[kind]))
			continue
		}
		if p := got[kind][0]; string(p) != d.payload {
			t.Errorf("%s: delivered\n%s\nwant\n%s", kind, p, d.payload)
		}
		if s := sessionID(got[kind][0]); s != d.session || s == "" {
			t.Errorf("%s: session.id %q, want %q", kind, s, d.session)
		}
	}
	for kind := range got {
		if _, ok := want[kind]; !ok {
			t.Errorf("delivered an event of kind %s, which the plugin does not wire", kind)
		}
	}
}

// logPluginCost logs the time the harness spent in the plugin's handlers
// per event: what one event costs the agent.
func logPluginCost(t *testing.T, agent, report string) {
	t.Helper()
	data, err := os.ReadFile(report)
	if err != nil {
		t.Errorf("%s: no report from the harness: %v", agent, err)
		return
	}
	var times map[string]float64
	if err := json.Unmarshal(data, &times); err != nil {
		t.Fatalf("%s: report: %v", agent, err)
	}
	var ms []float64
	for _, v := range times {
		if v >= 1 { // the events the plugin does not wire cost microseconds
			ms = append(ms, v)
		}
	}
	sort.Float64s(ms)
	if len(ms) > 0 {
		t.Logf("%s: one handed-over event costs the host %.1f ms (median of %d; %.1f to %.1f ms)", agent, ms[len(ms)/2], len(ms), ms[0], ms[len(ms)-1])
	}
}

// treeOf is every file and folder under dir, with its mode and content.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		entry := info.Mode().String()
		if d.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			entry += " " + string(data)
		}
		out[rel] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPluginInstallRoundTrip installs each plugin agent's plugin where
// the agent has no folder yet, and where the user has plugins and a
// node_modules of their own: a second install changes nothing, --dry-run
// writes nothing, status says it is wired, and uninstall gives the user's
// home back byte for byte.
func TestPluginInstallRoundTrip(t *testing.T) {
	testHome(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pluginAgents() {
		for _, existing := range []bool{false, true} {
			name := a.name + "/no-folder"
			if existing {
				name = a.name + "/user-plugins"
			}
			t.Run(name, func(t *testing.T) {
				userHome := setUserHome(t)
				t.Setenv("XDG_CONFIG_HOME", "")
				t.Setenv("PI_CODING_AGENT_DIR", "")
				path, err := a.pluginPath(os.Getenv, "")
				if err != nil {
					t.Fatal(err)
				}
				if existing {
					dir := filepath.Dir(path)
					os.MkdirAll(filepath.Join(dir, "node_modules"), 0o755)
					os.WriteFile(filepath.Join(dir, "mine.js"), []byte("export const Mine = async () => ({})\n"), 0o644)
					os.WriteFile(filepath.Join(filepath.Dir(dir), "package.json"), []byte(`{"dependencies":{}}`+"\n"), 0o644)
				}
				before := treeOf(t, userHome)

				mustCLI(t, "hooks", "install", "--dry-run", "--command", exe, a.name)
				if after := treeOf(t, userHome); !mapsEqual(before, after) {
					t.Fatalf("install --dry-run wrote something")
				}
				out := mustCLI(t, "hooks", "install", "--command", exe, a.name)
				if !strings.Contains(out, "installed") {
					t.Errorf("install: %s", out)
				}
				installed, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := os.Stat(path)
				if out := mustCLI(t, "hooks", "install", "--command", exe, a.name); !strings.Contains(out, "nothing changed") {
					t.Errorf("second install: %s", out)
				}
				if fi2, _ := os.Stat(path); !os.SameFile(fi, fi2) || !fi2.ModTime().Equal(fi.ModTime()) {
					t.Errorf("a second install rewrote %s", path)
				}
				if again, _ := os.ReadFile(path); !bytes.Equal(again, installed) {
					t.Errorf("a second install changed %s", path)
				}
				if out := mustCLI(t, "hooks", "status", a.name); !strings.Contains(out, "wired, ") || !strings.Contains(out, exe) {
					t.Errorf("status: %s", out)
				}
				mustCLI(t, "hooks", "uninstall", "--dry-run", a.name)
				if again, err := os.ReadFile(path); err != nil || !bytes.Equal(again, installed) {
					t.Errorf("uninstall --dry-run changed %s: %v", path, err)
				}
				mustCLI(t, "hooks", "uninstall", a.name)
				if after := treeOf(t, userHome); !mapsEqual(before, after) {
					t.Errorf("after uninstall the home differs from before install:\nbefore %v\nafter  %v", before, after)
				}
				if out := mustCLI(t, "hooks", "status", a.name); !strings.Contains(out, "not wired") {
					t.Errorf("status after uninstall: %s", out)
				}
			})
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPluginInstallLeavesForeignFile: a file of the plugin's name that
// difflore did not write is the user's: install refuses to replace it and
// uninstall leaves it, byte for byte.
func TestPluginInstallLeavesForeignFile(t *testing.T) {
	testHome(t)
	for _, a := range pluginAgents() {
		t.Run(a.name, func(t *testing.T) {
			setUserHome(t)
			t.Setenv("XDG_CONFIG_HOME", "")
			t.Setenv("PI_CODING_AGENT_DIR", "")
			path, _ := a.pluginPath(os.Getenv, "")
			os.MkdirAll(filepath.Dir(path), 0o755)
			mine := []byte("// my own difflore plugin\nexport default function () {}\n")
			os.WriteFile(path, mine, 0o644)
			if _, errOut, code := cli(t, "", "hooks", "install", "--command", "difflore", a.name); code != 1 || !strings.Contains(errOut, "not a plugin difflore wrote") {
				t.Errorf("install over the user's file: exit %d, %s", code, errOut)
			}
			if out := mustCLI(t, "hooks", "uninstall", a.name); !strings.Contains(out, "nothing changed") {
				t.Errorf("uninstall: %s", out)
			}
			if data, _ := os.ReadFile(path); !bytes.Equal(data, mine) {
				t.Errorf("the user's file changed:\n%s", data)
			}
		})
	}
}

// TestPluginProgramLiteral: the path the plugin runs is written as a
// JavaScript string literal that reads back as the path, whatever it
// holds (quotes, backslashes, line separators, a "*/"), and status reads
// it back.
func TestPluginProgramLiteral(t *testing.T) {
	for _, p := range []string{
		`/opt/my tools/difflore`,
		`C:\Program Files\difflore\difflore.exe`,
		"/tmp/a\"b'c`d${x}\\n/\u2028\u2029*/difflore",
	} {
		for _, a := range pluginAgents() {
			out := a.renderPlugin(p, false)
			if got := pluginFileProgram(out); got != p {
				t.Errorf("%s: the plugin for %q reads back as %q", a.name, p, got)
			}
			if !isOurPlugin(out) {
				t.Errorf("%s: the plugin does not start with the marker", a.name)
			}
		}
	}
}

// TestPluginEventLists: each plugin source hands over exactly the events
// its agent's row lists, so that status and the README say what the
// plugin does.
func TestPluginEventLists(t *testing.T) {
	quoted := regexp.MustCompile(`^\s+"([a-z_.]+)",$`)
	for _, a := range pluginAgents() {
		var inList []string
		for _, line := range strings.Split(a.plugin.source, "\n") {
			if m := quoted.FindStringSubmatch(line); m != nil {
				inList = append(inList, m[1])
			}
		}
		for _, h := range regexp.MustCompile(`hook\("([a-z.]+)"\)`).FindAllStringSubmatch(a.plugin.source, -1) {
			inList = append(inList, h[1])
		}
		if !slices.Equal(inList, a.plugin.events) {
			t.Errorf("%s: the plugin hands over\n%v\nthe table says\n%v", a.name, inList, a.plugin.events)
		}
	}
}

// TestPluginStatus: status fails when the plugin runs a difflore that is
// not there (every event is lost), and says so when another difflore
// version wrote the plugin.
func TestPluginStatus(t *testing.T) {
	testHome(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pluginAgents() {
		t.Run(a.name, func(t *testing.T) {
			setUserHome(t)
			t.Setenv("XDG_CONFIG_HOME", "")
			t.Setenv("PI_CODING_AGENT_DIR", "")
			path, _ := a.pluginPath(os.Getenv, "")
			gone := filepath.Join(t.TempDir(), "gone", "difflore")
			mustCLI(t, "hooks", "install", "--command", gone, a.name)
			if out, _, code := cli(t, "", "hooks", "status", a.name); code != 1 || !strings.Contains(out, "which does not exist") {
				t.Errorf("status of a plugin running %s: exit %d\n%s", gone, code, out)
			}
			mustCLI(t, "hooks", "install", "--command", exe, a.name)
			data, _ := os.ReadFile(path)
			os.WriteFile(path, append(data, "// an older release\n"...), 0o600)
			if out := mustCLI(t, "hooks", "status", a.name); !strings.Contains(out, "written by another difflore version") {
				t.Errorf("status of another version's plugin:\n%s", out)
			}
			mustCLI(t, "hooks", "uninstall", a.name)
			if _, err := os.Stat(path); err == nil {
				t.Errorf("uninstall left another version's plugin of difflore's")
			}
		})
	}
}
