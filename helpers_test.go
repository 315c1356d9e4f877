package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/shirou/gopsutil/v4/process"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The test binary doubles as difflore: testscript runs it under the name
// "difflore", tests re-exec it with asMainEnv set, and 'run --detach' re-execs
// it with DIFFLORE_DETACHED set. sleepEnv makes it an unrelated process that
// only waits to be killed.
const (
	asMainEnv = "DIFFLORE_TEST_AS_MAIN"
	sleepEnv  = "DIFFLORE_TEST_SLEEP"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(sleepEnv) != "":
		time.Sleep(2 * time.Minute) // Bounded: a leaked child ends by itself.
		os.Exit(0)
	case os.Getenv(asMainEnv) != "" || os.Getenv(detachedEnv) != "":
		os.Exit(report(os.Stderr, runTest(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)))
	}
	testscript.Main(benchCacheM{m}, map[string]func(){"difflore": main})
}

// quickWaitsEnv, set in a test's environment, gives difflore in that test
// short waits (quickWaits): in this process through runTest, and in the
// children it starts through TestMain. The test binary reads it; difflore
// itself never does.
const quickWaitsEnv = "DIFFLORE_TEST_QUICK_WAITS"

// pauseEnv, set in the environment of a child difflore of the test to
// the names of steps, comma-separated (config.pauseAt), makes it stop at
// each: it writes pausedLine and the step to standard error, then waits.
// How it waits:
//   - with pauseStdinEnv set, for a line on its standard input
//     (spawnPaused, pausedProc.resume), at every step named;
//   - with pauseReleaseEnv set to the path of a named pipe, once only,
//     until the test opens that pipe for writing (releasePause);
//   - else until it is killed (two minutes at most, so that a leaked child
//     ends by itself).
//
// The test binary reads them (runTest); difflore itself never does.
const (
	pauseEnv        = "DIFFLORE_TEST_PAUSE"
	pauseReleaseEnv = "DIFFLORE_TEST_PAUSE_RELEASE"
	pauseStdinEnv   = "DIFFLORE_TEST_PAUSE_STDIN"
	pausedLine      = "test pause point reached:"
)

// pauseAtStep is config.pause for a child started with pauseEnv.
func pauseAtStep(steps, release string, fromStdin bool, stdin io.Reader, w io.Writer) func(string) {
	want := strings.Split(steps, ",")
	in := bufio.NewReader(stdin)
	var mu sync.Mutex
	var once sync.Once
	return func(at string) {
		if !slices.Contains(want, at) {
			return
		}
		switch {
		case fromStdin:
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(w, pausedLine, at)
			in.ReadString('\n') // the test's go-ahead, or the end of input when the test is gone
		case release != "":
			once.Do(func() {
				fmt.Fprintln(w, pausedLine, at)
				// Opening a named pipe to read waits for a writer.
				if f, err := os.Open(release); err == nil {
					f.Close()
				}
			})
		default:
			fmt.Fprintln(w, pausedLine, at)
			time.Sleep(2 * time.Minute)
		}
	}
}

// releasePause lets a daemon paused at its step go on (pauseReleaseEnv).
func releasePause(t *testing.T, release string) {
	t.Helper()
	f, err := os.OpenFile(release, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// quickWaits are short enough that a test does not sit them out, and long
// enough for what each is for in the test that asks for them: a settle
// time that only an unverifiable lock holder ever runs out, say.
func quickWaits() waits {
	return waits{settle: 100 * time.Millisecond, shutdownGrace: time.Second, stdinWait: 250 * time.Millisecond, firstPass: firstPassWait, healGate: healGateWait,
		lockBusy: 100 * time.Millisecond, lockRetry: 50 * time.Millisecond}
}

// useQuickWaits gives difflore quickWaits for the rest of the test.
func useQuickWaits(t *testing.T) { t.Setenv(quickWaitsEnv, "1") }

// runTest is run for tests: with the process's environment, and with
// quickWaits where the test asked for them (useQuickWaits).
func runTest(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runTestEnv(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// runTestEnv is runTest with getenv for the environment, which a test that
// owns its home passes rather than set the process's (testEnv).
func runTestEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg := loadConfig(getenv, stdin, stdout, stderr)
	if step := getenv(salvagePauseEnv); step != "" {
		cfg.salvagePause = salvagePauser(step, stderr)
	}
	if getenv(quickWaitsEnv) != "" {
		cfg.waits = quickWaits()
	}
	if steps := getenv(pauseEnv); steps != "" {
		cfg.pause = pauseAtStep(steps, getenv(pauseReleaseEnv), getenv(pauseStdinEnv) != "", stdin, stderr)
	}
	return runConfig(ctx, cfg, args)
}

// salvagePauseEnv, set in the environment of a daemon that a test starts,
// names a step of the salvage (healOpts.pause) at which the daemon says
// so on its standard error and then waits until it is asked to stop, for
// the test to kill it or stop it exactly there. The test binary reads it;
// difflore itself never does.
const salvagePauseEnv = "DIFFLORE_TEST_SALVAGE_PAUSE"

// salvagePausedMsg is what a daemon paused at a salvage step says.
const salvagePausedMsg = "test: salvage paused at "

// salvagePauser is a salvage pause that waits at step, having said so on w.
func salvagePauser(step string, w io.Writer) func(ctx context.Context, at string) {
	return func(ctx context.Context, at string) {
		if at != step {
			return
		}
		fmt.Fprintf(w, "%s%s\n", salvagePausedMsg, at)
		<-ctx.Done()
	}
}

// ownHome is a data home for the test alone, not yet made, which it passes
// to what it runs rather than through the process environment: a test that
// uses only such a home may run in parallel with others (t.Parallel).
func ownHome(t testing.TB) string {
	return filepath.Join(t.TempDir(), "home")
}

// testEnv is the environment difflore sees in a test that owns its data
// home: passed to run as its getenv, not set in the process, so that the
// test may run in parallel with others (t.Parallel).
type testEnv struct {
	t    *testing.T
	home string
	vars map[string]string

	homeOnce sync.Once
	userHome string // the user's home folder its commands see (getenv)
}

// newTestEnv gives the test a data home of its own (ownHome) and an
// environment that names it, with no endpoint or token.
func newTestEnv(t *testing.T) *testEnv {
	home := ownHome(t)
	return &testEnv{t: t, home: home, vars: map[string]string{"DIFFLORE_HOME": home}}
}

// getenv is os.Getenv, but difflore's own variables come from e.vars alone,
// so that none set in the process leaks in; and the user's home folder
// (HOME, USERPROFILE), unless e or the test (setUserHome) set one, is a
// folder of the test's own: a command run in e never reads or writes the
// real one.
func (e *testEnv) getenv(key string) string {
	if v, ok := e.vars[key]; ok {
		return v
	}
	if strings.HasPrefix(key, "DIFFLORE_") {
		return ""
	}
	v := os.Getenv(key)
	if (key == "HOME" || key == "USERPROFILE") && v == startUserHome[key] {
		e.homeOnce.Do(func() { e.userHome = e.t.TempDir() })
		return e.userHome
	}
	return v
}

// startUserHome holds HOME and USERPROFILE as the test process found them:
// the real user's, which testEnv.getenv never gives a command.
var startUserHome = map[string]string{"HOME": os.Getenv("HOME"), "USERPROFILE": os.Getenv("USERPROFILE")}

// setenv sets key in e for the rest of the test, as t.Setenv would in the
// process.
func (e *testEnv) setenv(key, value string) { e.vars[key] = value }

// useQuickWaits gives difflore run in e quickWaits for the rest of the test.
func (e *testEnv) useQuickWaits() { e.setenv(quickWaitsEnv, "1") }

// environ is the environment of a child difflore run in e: the process's,
// less difflore's own variables, plus e.vars.
func (e *testEnv) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DIFFLORE_") {
			env = append(env, kv)
		}
	}
	for k, v := range e.vars {
		env = append(env, k+"="+v)
	}
	for _, k := range []string{"HOME", "USERPROFILE"} {
		if _, set := e.vars[k]; !set && os.Getenv(k) != "" {
			env = append(env, k+"="+e.getenv(k)) // The last of a name wins.
		}
	}
	return env
}

// command returns the test binary set up to run as difflore with args, in e.
func (e *testEnv) command(args ...string) *exec.Cmd {
	e.t.Helper()
	cmd := testBinary(e.t, args...)
	cmd.Env = append(e.environ(), asMainEnv+"=1")
	return cmd
}

// startDaemon is startDaemon, in e.
func (e *testEnv) startDaemon(args ...string) *daemonProc {
	e.t.Helper()
	return awaitStarted(e.t, e.spawnPaused(nil, append([]string{"run"}, args...)...))
}

// spawnDaemon is spawnDaemon, in e.
func (e *testEnv) spawnDaemon(args ...string) (*daemonProc, <-chan struct{}) {
	e.t.Helper()
	p := e.spawnPaused(nil, append([]string{"run"}, args...)...)
	return p.daemonProc, p.ready
}

// spawnPaused is spawnPaused, in e.
func (e *testEnv) spawnPaused(steps []string, args ...string) *pausedProc {
	e.t.Helper()
	return spawnCmd(e.t, e.command(args...), steps)
}

// inProcessDaemon is inProcessDaemon, in e.
func (e *testEnv) inProcessDaemon(args ...string) *syncBuffer {
	e.t.Helper()
	return inProcessDaemonEnv(e.t, e.getenv, args...)
}

// statusOf is statusOf, in e.
func (e *testEnv) statusOf() (state string, pid, code int) {
	e.t.Helper()
	out, stderr, code := e.cli("", "status", "--json")
	return parseStatus(e.t, out, stderr, code)
}

// mustHome opens e's data home, creating it.
func (e *testEnv) mustHome() string {
	e.t.Helper()
	return mustOpenHomeCreate(e.t, e.home).dir
}

// cli runs difflore in this process, in e, and returns its output and exit
// code.
func (e *testEnv) cli(stdin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := runTestEnv(ctx, args, strings.NewReader(stdin), &out, &errb, e.getenv)
	if err != nil && exitCode(err) != 0 {
		fmt.Fprintf(&errb, "difflore: %v\n", err)
	}
	return out.String(), errb.String(), exitCode(err)
}

// mustCLI runs difflore in this process, in e, and fails the test on a
// non-zero exit.
func (e *testEnv) mustCLI(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.cli("", args...)
	if code != 0 {
		e.t.Fatalf("difflore %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// deadLetters lists the dead letters of e's outbox, as 'outbox list' does.
func (e *testEnv) deadLetters() []deadLetter {
	e.t.Helper()
	return parseDeadLetters(e.t, e.mustCLI("outbox", "list", "--json"))
}

// testHome gives the test a data home of its own and points DIFFLORE_HOME at
// it, so that no test touches the real home.
func testHome(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	t.Setenv("DIFFLORE_HOME", dir)
	t.Setenv("DIFFLORE_CLOUD_URL", "")
	t.Setenv("DIFFLORE_CLOUD_TOKEN", "")
	// And a user's home folder of its own, unless the test gave one
	// (setUserHome): the commands it runs never see the real one.
	for k, real := range startUserHome {
		if os.Getenv(k) == real {
			t.Setenv(k, filepath.Join(filepath.Dir(dir), "user"))
		}
	}
	return dir
}

// cli runs difflore in this process and returns its output and exit code.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	processHome(t)
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := runTest(ctx, args, strings.NewReader(stdin), &out, &errb)
	if err != nil && exitCode(err) != 0 {
		fmt.Fprintf(&errb, "difflore: %v\n", err)
	}
	return out.String(), errb.String(), exitCode(err)
}

// mustCLI runs difflore in this process and fails the test on a non-zero exit.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, "", args...)
	if code != 0 {
		t.Fatalf("difflore %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// command returns the test binary set up to run as difflore with args,
// in the process's environment.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	processHome(t)
	cmd := testBinary(t, args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

// testBinary returns the test binary set up to run with args.
func testBinary(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command(exe, args...)
}

// processHome fails the test when the process's environment names no data
// home: difflore run in it would use the real one. A test that owns its
// home (testEnv) runs difflore through its methods instead.
func processHome(t testing.TB) {
	t.Helper()
	if os.Getenv("DIFFLORE_HOME") == "" {
		t.Fatal("difflore run in the process's environment, which names no DIFFLORE_HOME: call testHome, or run it through the test's testEnv")
	}
}

// daemonProc is a foreground daemon started by a test.
type daemonProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	paused chan string   // the step, when the daemon reports a pause point (pauseEnv)
	log    *bytes.Buffer // what it wrote to stderr: read it under mu while it runs
	err    error         // its exit, after done is closed
	mu     sync.Mutex
	grew   chan struct{} // a value after the log grows, dropped when full
}

// awaitLog waits, up to timeout, until what the daemon has logged so far
// satisfies cond.
func (d *daemonProc) awaitLog(t *testing.T, timeout time.Duration, what string, cond func(log string) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		ok := cond(d.log.String())
		d.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-d.grew:
		case <-d.done:
			t.Fatalf("the daemon exited while the test waited for %s: %v\n%s", what, d.err, d.log)
		case <-deadline:
			d.mu.Lock()
			defer d.mu.Unlock()
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, d.log)
		}
	}
}

// startDaemon starts 'difflore run args…' as a child process and waits for
// its ready line. The daemon is killed when the test ends, if still running.
func startDaemon(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	return awaitStarted(t, spawnPaused(t, nil, append([]string{"run"}, args...)...))
}

// awaitStarted waits for a daemon's ready line and returns it.
func awaitStarted(t *testing.T, p *pausedProc) *daemonProc {
	t.Helper()
	d := p.daemonProc
	select {
	case <-p.ready:
	case <-d.done:
		t.Fatalf("daemon exited before it was ready: %v\n%s", d.err, d.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon not ready after 30s\n%s", d.log)
	}
	return d
}

// pausedProc is a child difflore that stops at the steps the test named:
// pauses receives each step as the child reaches it, and resume lets it go
// on from there.
type pausedProc struct {
	*daemonProc
	ready  <-chan struct{} // closed when it logs "daemon ready"
	pauses <-chan string
	stdin  io.WriteCloser
	stdout *bytes.Buffer // what it printed, to read once it is done
}

// spawnPaused starts 'difflore args…' as a child that pauses at steps, and
// returns at once.
func spawnPaused(t *testing.T, steps []string, args ...string) *pausedProc {
	t.Helper()
	return spawnCmd(t, command(t, args...), steps)
}

// spawnCmd starts a prepared difflore child that pauses at steps, and
// returns at once.
func spawnCmd(t *testing.T, cmd *exec.Cmd, steps []string) *pausedProc {
	t.Helper()
	if len(steps) > 0 {
		cmd.Env = append(cmd.Env, pauseEnv+"="+strings.Join(steps, ","), pauseStdinEnv+"=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := &bytes.Buffer{}
	cmd.Stdout = stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, done: make(chan struct{}), paused: make(chan string, 1), log: &bytes.Buffer{}, grew: make(chan struct{}, 1)}
	ready := make(chan struct{})
	pauses := make(chan string, 16)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		first := true
		for sc.Scan() {
			lines <- sc.Text()
			if _, step, ok := strings.Cut(sc.Text(), pausedLine+" "); ok {
				select {
				case d.paused <- step:
				default:
				}
				select {
				case pauses <- step:
				default: // a child paused by pauseEnv in the test's environment, which no one awaits
				}
			}
			if first && strings.Contains(sc.Text(), "daemon ready") {
				first = false
				close(ready)
			}
		}
		close(lines)
	}()
	go func() {
		for l := range lines {
			d.mu.Lock()
			d.log.WriteString(l + "\n")
			d.mu.Unlock()
			select {
			case d.grew <- struct{}{}:
			default:
			}
		}
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
	})
	return &pausedProc{daemonProc: d, ready: ready, pauses: pauses, stdin: stdin, stdout: stdout}
}

// awaitPause waits for the child to reach step, failing the test if it
// reaches another first, exits, or takes longer than timeout.
func (p *pausedProc) awaitPause(t *testing.T, step string, timeout time.Duration) {
	t.Helper()
	select {
	case got := <-p.pauses:
		if got != step {
			t.Fatalf("paused at %q, want %q", got, step)
		}
	case <-p.done:
		t.Fatalf("exited before it reached %q: %v\n%s", step, p.err, p.log)
	case <-time.After(timeout):
		t.Fatalf("did not reach %q in %s", step, timeout)
	}
}

// resume lets the child go on from the step it paused at.
func (p *pausedProc) resume(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "\n"); err != nil {
		t.Fatalf("resume: %v", err)
	}
}

// awaitReady waits for the child's "daemon ready" line.
func (p *pausedProc) awaitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("exited before it was ready: %v\n%s", p.err, p.log)
	case <-time.After(timeout):
		t.Fatalf("not ready after %s\n%s", timeout, p.log)
	}
}

// wait waits for the daemon to exit, failing the test after timeout.
func (d *daemonProc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		t.Fatalf("daemon still running after %s", timeout)
		return nil
	}
}

func (d *daemonProc) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// sleeper is an unrelated process: a copy of the test binary under another
// name that only sleeps.
type sleeper struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (s *sleeper) pid() int { return s.cmd.Process.Pid }

func (s *sleeper) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// startSleeper starts an unrelated process, killed when the test ends.
func startSleeper(t *testing.T) *sleeper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "unrelated"+filepath.Ext(exe))
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, copyPath, data)
	cmd := exec.Command(copyPath)
	cmd.Env = append(os.Environ(), sleepEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sleeper{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-s.exited })
	return s
}

// waitFor polls cond until it holds or timeout passes. Tests use it only
// for outside effects that no OS call announces, such as a line appearing in
// a file the daemon writes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readLines returns the lines of a file, none if it does not exist.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// fileURL is a file: endpoint for path, on any OS.
func fileURL(path string) string {
	return "file:///" + strings.TrimPrefix(filepath.ToSlash(path), "/")
}

// readRequest reads a request's body, gunzipping it when the request says
// it is gzipped, as difflore's bodies over 1 KiB are.
func readRequest(r *http.Request) ([]byte, error) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	}
	return io.ReadAll(body)
}

// mustOutbox opens the outbox of h for a test, which closes it.
func mustOutbox(tb testing.TB, h home, now func() time.Time) *outbox {
	tb.Helper()
	ob, err := openOutbox(h, time.Second, now)
	if err != nil {
		tb.Fatal(err)
	}
	return ob
}

// fakeClock is the drainer's and the outbox's clock in tests: it moves only
// when the test says, so no test sleeps through a backoff.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.now().Add(d)) }

// row is an event as the outbox holds it; state -1 means it is gone
// (delivered).
type row struct {
	state       int
	attempts    int
	availableAt time.Time
	lastError   string
}

func rowOf(t testing.TB, conn *sqlite.Conn, id string) row {
	t.Helper()
	rw := row{state: -1}
	err := sqlitex.Execute(conn, `SELECT state, attempts, available_at, coalesce(last_error, '') FROM events WHERE id = ?`,
		&sqlitex.ExecOptions{Args: []any{id}, ResultFunc: func(s *sqlite.Stmt) error {
			rw = row{s.ColumnInt(0), s.ColumnInt(1), time.UnixMilli(s.ColumnInt64(2)).UTC(), s.ColumnText(3)}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

func always(a answer) func(int, recorded) answer { return func(int, recorded) answer { return a } }

// inProcessDaemon runs 'difflore run args…' in this process until the test
// ends. It works on every OS and lets a benchmark use it.
func inProcessDaemon(tb testing.TB, args ...string) *syncBuffer {
	tb.Helper()
	processHome(tb)
	return inProcessDaemonEnv(tb, os.Getenv, args...)
}

// inProcessDaemonEnv is inProcessDaemon with getenv for the environment.
func inProcessDaemonEnv(tb testing.TB, getenv func(string) string, args ...string) *syncBuffer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- runTestEnv(ctx, append([]string{"run"}, args...), strings.NewReader(""), io.Discard, logs, getenv)
	}()
	select {
	case <-logs.ready:
	case err := <-done:
		cancel()
		tb.Fatalf("daemon exited before it was ready: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		tb.Fatalf("daemon not ready after 30s\n%s", logs)
	}
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("daemon: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Errorf("daemon did not stop within 30s")
		}
	})
	return logs
}

func mustOpenHome(t testing.TB, dir string) home {
	t.Helper()
	h, err := openHome(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// setAvailableAt moves every pending event's retry time to at, as a clock
// stepped back after the retry was scheduled (or a bug) leaves it.
func setAvailableAt(t testing.TB, conn *sqlite.Conn, at time.Time) {
	t.Helper()
	err := sqlitex.Execute(conn, `UPDATE events SET available_at = ? WHERE state = 0`,
		&sqlitex.ExecOptions{Args: []any{at.UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
}

// badInput is what a hook can hand enqueue that is not an event it can
// queue: each must be kept as a dead letter, never block the agent.
type badInput struct {
	name   string
	stdin  string
	args   []string // after "enqueue"
	code   int      // without --strict
	reason string   // in the dead letter's reason
	stored string   // the dead letter's bytes, when not stdin
}

// deadLetters lists the dead letters of the test's home as 'outbox list
// --json' shows them.
func deadLetters(t *testing.T) []deadLetter {
	t.Helper()
	return parseDeadLetters(t, mustCLI(t, "outbox", "list", "--json"))
}

// parseDeadLetters reads the dead letters out of 'outbox list --json'.
func parseDeadLetters(t *testing.T, listJSON string) []deadLetter {
	t.Helper()
	var out struct {
		Counts      counts       `json:"counts"`
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(listJSON), &out); err != nil {
		t.Fatal(err)
	}
	return out.DeadLetters
}

// writeSpillFiles writes n spill files as enqueue would, without the
// fsync, so that a test can make thousands cheaply.
func writeSpillFiles(t *testing.T, h home, prefix string, n int, payload string) {
	t.Helper()
	dir := h.path(spillDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range n {
		data, err := json.Marshal(spilled{ID: fmt.Sprintf("%s-%05d", prefix, i), Kind: "event", CreatedAt: now, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, newEventID(now)+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// replayAll replays the spill folder round by round until it is done, and
// returns how many spill files went into the outbox.
func replayAll(t *testing.T, h home, ob *outbox) int {
	t.Helper()
	n := 0
	for range 10000 {
		r, err := replaySpill(context.Background(), h, ob)
		if err != nil {
			t.Fatal(err)
		}
		if n += r.moved; !r.more {
			return n
		}
	}
	t.Fatal("spill replay still has more after 10000 rounds")
	return n
}

func mustOpenHomeCreate(t *testing.T, dir string) home {
	t.Helper()
	h, err := openHome(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// outboxCounts opens the outbox of the data home dir and counts its events.
func outboxCounts(t *testing.T, dir string) counts {
	t.Helper()
	h, err := openHome(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	c, err := ob.counts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// parseStatus reads the state and PID out of what status --json printed.
func parseStatus(t *testing.T, out, stderr string, exit int) (state string, pid, code int) {
	t.Helper()
	var rep struct {
		Daemon struct {
			State string `json:"state"`
			PID   int    `json:"pid"`
		} `json:"daemon"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	return rep.Daemon.State, rep.Daemon.PID, exit
}

// startedAt is a process's start time as difflore would record it.
func startedAt(t *testing.T, pid int) time.Time {
	t.Helper()
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := p.CreateTime()
	if err != nil {
		t.Fatal(err)
	}
	return time.UnixMilli(ms).UTC()
}

// runProc runs a prepared difflore child to the end, bounded by timeout,
// and returns its output and exit code.
func runProc(t *testing.T, cmd *exec.Cmd, timeout time.Duration) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Errorf("start %s: %v", cmd.Args, err)
		return "", "", -1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s still running after %s; killed it", strings.Join(cmd.Args[1:], " "), timeout)
		return out.String(), errOut.String(), -1
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	}
	t.Errorf("%s: %v", cmd.Args, err)
	return out.String(), errOut.String(), -1
}

func eventIDs(evs []event) []string {
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// checkAccounting asserts the invariant every test of a loss keeps: the
// events hooks handed over are, exactly, those delivered, those in the
// dead letters and those the difflore.gap events report. delivered and
// dead count events other than gap reports; handedOver and the counts
// come from the test, gaps from what the endpoint (or the outbox) holds.
func checkAccounting(t testing.TB, handedOver, delivered, dead int64, gaps []gap) {
	t.Helper()
	var evicted int64
	for _, g := range gaps {
		evicted += g.Evicted
	}
	if delivered+dead+evicted != handedOver {
		t.Errorf("accounting: %d handed over, but %d delivered + %d dead letters + %d reported by %d gaps = %d",
			handedOver, delivered, dead, evicted, len(gaps), delivered+dead+evicted)
	}
}

// writeExecutable writes a program the test then runs. A process forked
// while the file is open for writing, for a parallel test, holds it open
// until that process execs, and starting the program then fails with
// "text file busy" (golang/go#22315). Forking takes syscall.ForkLock for
// writing; so does this write, so no fork happens while the file is open.
func writeExecutable(t *testing.T, path string, data []byte) {
	t.Helper()
	syscall.ForkLock.Lock()
	err := os.WriteFile(path, data, 0o755)
	syscall.ForkLock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}
