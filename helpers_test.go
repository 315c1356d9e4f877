package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
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
		main()
	}
	testscript.Main(benchCacheM{m}, map[string]func(){"difflore": main})
}

// testHome gives the test a data home of its own and points DIFFLORE_HOME at
// it, so that no test touches the real home.
func testHome(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	t.Setenv("DIFFLORE_HOME", dir)
	t.Setenv("DIFFLORE_CLOUD_URL", "")
	t.Setenv("DIFFLORE_CLOUD_TOKEN", "")
	return dir
}

// cli runs difflore in this process and returns its output and exit code.
func cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, strings.NewReader(stdin), &out, &errb)
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

// command returns the test binary set up to run as difflore with args.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

// daemonProc is a foreground daemon started by a test.
type daemonProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer // what it wrote to stderr
	err  error         // its exit, after done is closed
}

// startDaemon starts 'difflore run args…' as a child process and waits for
// its ready line. The daemon is killed when the test ends, if still running.
func startDaemon(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	d, ready := spawnDaemon(t, args...)
	select {
	case <-ready:
	case <-d.done:
		t.Fatalf("daemon exited before it was ready: %v\n%s", d.err, d.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon not ready after 30s\n%s", d.log)
	}
	return d
}

// spawnDaemon starts 'difflore run args…' and returns at once, with a channel
// closed when the daemon logs that it is ready.
func spawnDaemon(t *testing.T, args ...string) (*daemonProc, <-chan struct{}) {
	t.Helper()
	cmd := command(t, append([]string{"run"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, done: make(chan struct{}), log: &bytes.Buffer{}}
	ready := make(chan struct{})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		first := true
		for sc.Scan() {
			lines <- sc.Text()
			if first && strings.Contains(sc.Text(), "daemon ready") {
				first = false
				close(ready)
			}
		}
		close(lines)
	}()
	go func() {
		for l := range lines {
			d.log.WriteString(l + "\n")
		}
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
	})
	return d, ready
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
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
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
