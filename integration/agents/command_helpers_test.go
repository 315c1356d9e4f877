package agents

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// commandEvent is one event as difflore delivers it to an endpoint.
type commandEvent struct {
	ID      string          `json:"id"`
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
}

// commandNeeds skips the test, visibly, where the real agents cannot run:
// they are Linux npm packages here, run by Node.js.
func commandNeeds(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the agents' npm packages are installed and run for Linux here")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("needs npm (and Node.js 20 or later): not on PATH")
	}
	if testing.Short() {
		t.Skip("installs agents from npm: not with -short")
	}
}

// commandDifflore builds difflore from the repository root into dir, a
// folder that is not on the agents' PATH: the hooks reach it by the
// absolute path install writes.
func commandDifflore(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "difflore")
	build := exec.Command("go", "build", "-o", exe, ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build difflore: %v\n%s", err, out)
	}
	return exe
}

// commandNpm installs packages (name@version) into a folder of their own
// and returns it. npm's download cache is DIFFLORE_NPM_CACHE when set (CI
// shares one across the run), else npm's own.
func commandNpm(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error"}, pkgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if c := os.Getenv("DIFFLORE_NPM_CACHE"); c != "" {
		cmd.Env = append(cmd.Env, "npm_config_cache="+c)
	}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	t.Logf("npm install %s: %s", strings.Join(pkgs, " "), time.Since(start).Round(time.Second))
	return dir
}

// commandUser is a fresh account for one agent: an empty home, a data
// home for difflore, and a PATH with Node.js and the system's programs,
// not difflore's folder.
type commandUser struct {
	home, dataHome, difflore string
	env                      []string
}

func newCommandUser(t *testing.T) *commandUser {
	t.Helper()
	root := t.TempDir()
	u := &commandUser{home: filepath.Join(root, "home"), dataHome: filepath.Join(root, "difflore")}
	binDir := filepath.Join(root, "bin")
	for _, d := range []string{u.home, binDir, filepath.Join(u.home, "project")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u.difflore = commandDifflore(t, binDir)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs Node.js: node is not on PATH")
	}
	u.env = []string{
		"HOME=" + u.home, "DIFFLORE_HOME=" + u.dataHome,
		"PATH=" + filepath.Dir(node) + ":/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8", "TMPDIR=" + os.TempDir(), "TERM=dumb", "CI=1", "NO_COLOR=1",
	}
	return u
}

// difflore runs difflore as this user and fails the test if it fails.
func (u *commandUser) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(u.difflore, args...)
	cmd.Env = u.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("difflore %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// agent runs an agent program in the user's project folder with extra
// environment, bounded by limit (it is killed then; the events it fired
// before stay), and returns what it printed. Its exit code is not
// looked at: not logged in, every agent here fails its model call.
func (u *commandUser) agent(t *testing.T, limit time.Duration, extraEnv []string, program string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = filepath.Join(u.home, "project")
	cmd.Env = append(append([]string{}, u.env...), extraEnv...)
	cmd.Stdin = strings.NewReader("")
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s: %v after %s", filepath.Base(program), strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond))
	return string(out)
}

// delivered drains the user's outbox to an endpoint on loopback and
// returns the events it received.
func (u *commandUser) delivered(t *testing.T) []commandEvent {
	t.Helper()
	var mu sync.Mutex
	var got []commandEvent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// difflore gzips a batch of more than a few hundred bytes.
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		body, _ := io.ReadAll(rd)
		var batch struct{ Events []commandEvent }
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, batch.Events...)
		mu.Unlock()
	}))
	defer srv.Close()
	u.run(t, "drain", "--endpoint", srv.URL)
	mu.Lock()
	defer mu.Unlock()
	return got
}

// closedPort is a loopback address where nothing listens: a model
// provider the agent cannot reach.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// checkArrived checks that every event in want arrived as agent.event, that
// every event arrived under the agent's name, and that each names the
// session in the field sessionKey.
func checkArrived(t *testing.T, agent, sessionKey string, got []commandEvent, want ...string) {
	t.Helper()
	kinds := map[string]int{}
	for _, e := range got {
		kinds[e.Kind]++
		if !strings.HasPrefix(e.Kind, agent+".") {
			t.Errorf("an event of kind %s, want only %s.*: %s", e.Kind, agent, e.Payload)
		}
		var fields map[string]any
		if err := json.Unmarshal(e.Payload, &fields); err != nil {
			t.Errorf("%s: payload is not a JSON object: %v", e.Kind, err)
			continue
		}
		if s, _ := fields[sessionKey].(string); s == "" {
			t.Errorf("%s: no %s in\n%s", e.Kind, sessionKey, e.Payload)
		}
	}
	for _, w := range want {
		if kinds[agent+"."+w] == 0 {
			t.Errorf("no %s.%s arrived; arrived: %v", agent, w, kinds)
		}
	}
	t.Logf("%s: arrived %v", agent, kinds)
}

// stopLeftBehind ends the processes an agent left running after it exited
// (Cline 3.0.65 starts a hub daemon, --cline-hub-daemon, that outlives
// it): those whose command line names the user's project folder, which
// only this test's agent knows, each by its PID. Linux only, as the test.
func (u *commandUser) stopLeftBehind(t *testing.T) {
	t.Helper()
	project := filepath.Join(u.home, "project")
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(project)) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil {
			t.Logf("ending what the agent left running: pid %d, %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			p.Kill()
		}
	}
}
