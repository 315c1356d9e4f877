package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/process"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// TestKilledDaemonLosesNothing kills a daemon hard and checks that status
// calls its PID file stale and that the next daemon delivers every event.
func TestKilledDaemonLosesNothing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	const n = 50
	for i := range n {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("evt-%02d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	d := e.startDaemon() // No endpoint: the events stay queued.
	if state, pid, code := e.statusOf(); state != "running" || pid != d.cmd.Process.Pid || code != 0 {
		t.Fatalf("status = %s pid %d exit %d, want running pid %d exit 0", state, pid, code, d.cmd.Process.Pid)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 10*time.Second)
	if state, pid, code := e.statusOf(); state != "stale" || pid != d.cmd.Process.Pid || code != 1 {
		t.Fatalf("after kill: status = %s pid %d exit %d, want stale pid %d exit 1", state, pid, code, d.cmd.Process.Pid)
	}

	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	d2 := e.startDaemon("--endpoint", ep.URL)
	arr.awaitN(t, n, 20*time.Second)
	for i := range n {
		if id := fmt.Sprintf("evt-%02d", i); arr.count(id) == 0 {
			t.Errorf("event %s was not delivered", id)
		}
	}
	if got := e.mustCLI("stop"); got != fmt.Sprintf("stopped (pid %d)\n", d2.cmd.Process.Pid) {
		t.Errorf("stop said %q", got)
	}
	if err := d2.wait(t, 10*time.Second); err != nil {
		t.Errorf("daemon exit after stop: %v\n%s", err, d2.log)
	}
	if _, err := os.Stat(filepath.Join(dir, pidFileName)); !os.IsNotExist(err) {
		t.Errorf("pid file left after a graceful stop: %v", err)
	}
}

// TestRunSurvivesClosedStderr starts a foreground daemon whose stderr is a
// pipe that nobody reads any more, as in 'difflore run 2>&1 | head -1': its
// next log line goes to a broken pipe. Logging must not kill it (Go ends a
// program that writes to a broken pipe on fd 1 or 2 with SIGPIPE unless it
// handles the signal): it delivers, and stops cleanly when asked.
func TestRunSurvivesClosedStderr(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	ep := newEndpoint(t, always(answer{status: 200}))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := e.command("run", "--endpoint", ep.URL)
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var exit error
	done := make(chan struct{})
	go func() { exit = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	// Read up to the ready line, then close the pipe's only reader.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "daemon ready") {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-done
			t.Fatalf("daemon closed stderr before it was ready: %v", exit)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready after 30s")
	}
	pr.Close()

	const n = 5
	for i := range n {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("evt-%d", i), `{}`)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("daemon died once its stderr was closed: %v", exit)
		default:
		}
		if c := outboxCounts(t, dir); c.Pending+c.Inflight == 0 && len(ep.requests()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events not delivered after 20s: %+v", outboxCounts(t, dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, want := e.mustCLI("stop"), fmt.Sprintf("stopped (pid %d)\n", cmd.Process.Pid); got != want {
		t.Errorf("stop said %q, want %q", got, want)
	}
	select {
	case <-done:
		if exit != nil {
			t.Errorf("daemon exit after stop: %v, want 0", exit)
		}
	case <-time.After(10 * time.Second):
		t.Error("daemon still running 10s after stop")
	}
}

// TestRunWaitsForLockedOutbox starts the daemon while another process
// holds the outbox exclusively (an sqlite3 shell in a transaction, a
// backup): it must say in its log that it waits and keep trying, stop
// promptly when asked meanwhile, and deliver once the lock is gone. It
// used to give up after 5 s and advise moving the outbox aside, which
// strands every event queued in it.
func TestRunWaitsForLockedOutbox(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	// Short looks at the lock and backoffs, so that the test does not sit
	// out a second at each.
	e.useQuickWaits()
	e.mustCLI("enqueue", "--id", "queued", `{"n":1}`)
	conn, err := sqlite.OpenConn(filepath.Join(home, dbFileName), sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// In exclusive locking mode, a connection in WAL mode keeps others
	// from reading too.
	for _, q := range []string{"PRAGMA locking_mode = EXCLUSIVE", "BEGIN EXCLUSIVE", "SELECT count(*) FROM events"} {
		if err := sqlitex.ExecuteTransient(conn, q, nil); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	const waiting = "outbox is locked"

	// Asked to stop while it waits, it stops at once.
	d, log := startLoggedCmd(t, e.command("run", "--endpoint", fileURL(out)))
	log.waitFor(t, waiting)
	if got := e.mustCLI("stop"); got != fmt.Sprintf("stopped (pid %d)\n", d.Process.Pid) {
		t.Errorf("stop while the daemon waits said %q", got)
	}
	log.waitExit(t)
	if code := d.ProcessState.ExitCode(); code != 0 {
		t.Errorf("daemon stopped while waiting: exit %d, want 0\n%s", code, log)
	}

	// Once the lock is gone, it goes on and delivers.
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	_, log = startLoggedCmd(t, e.command("run", "--endpoint", ep.URL))
	log.waitFor(t, waiting)
	if err := sqlitex.ExecuteTransient(conn, "ROLLBACK", nil); err != nil {
		t.Fatal(err)
	}
	conn.Close() // Exclusive locking mode holds the lock until then.
	log.waitFor(t, "daemon ready")
	arr.await(t, "queued", 20*time.Second)
	e.mustCLI("stop")
	log.waitExit(t)
	if strings.Contains(log.String(), "aside") {
		t.Errorf("the daemon advises moving the outbox aside:\n%s", log)
	}
}

// loggedProc is a child whose standard error a test reads line by line.
type loggedProc struct {
	lines chan string     // closed when the child's standard error ends
	seen  strings.Builder // every line read so far
}

func (l *loggedProc) String() string { return l.seen.String() }

// startLoggedCmd starts a prepared difflore child (testEnv.command) and
// reads its standard error line by line. The child is killed when the test
// ends, if still running.
func startLoggedCmd(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, *loggedProc) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &loggedProc{lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		cmd.Wait()
		close(l.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range l.lines {
		}
	})
	return cmd, l
}

// waitFor reads lines until one holds want, failing the test if the child
// ends first or 30 s pass.
func (l *loggedProc) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s, ok := <-l.lines:
			if !ok {
				t.Fatalf("the child ended before it logged %q:\n%s", want, l)
			}
			l.seen.WriteString(s + "\n")
			if strings.Contains(s, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q logged after 30s:\n%s", want, l)
		}
	}
}

// waitExit reads the rest of the child's output, until it exits.
func (l *loggedProc) waitExit(t *testing.T) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s, ok := <-l.lines:
			if !ok {
				return
			}
			l.seen.WriteString(s + "\n")
		case <-timeout:
			t.Fatalf("the child still runs 30s on:\n%s", l)
		}
	}
}

// TestRunTakeover starts a detached daemon, as a hook would, then a
// foreground 'run --takeover', as a service would: the old daemon stops
// gracefully, the new one holds the lock, and every event enqueued before
// and during the handover is delivered.
func TestRunTakeover(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.setenv("DIFFLORE_CLOUD_URL", ep.URL)
	started := e.mustCLI("run", "--detach")
	t.Cleanup(func() { e.cli("", "stop") })
	var oldPID int
	if _, err := fmt.Sscanf(started, "started (pid %d)", &oldPID); err != nil {
		t.Fatalf("run --detach said %q: %v", started, err)
	}
	var want []string
	enqueue := func(id string) {
		e.mustCLI("enqueue", "--id", id, `{"n":1}`)
		want = append(want, id)
	}
	for i := range 5 {
		enqueue(fmt.Sprintf("before-%d", i))
	}

	d, ready := e.spawnDaemon("--takeover")
	for i := 0; ; i++ {
		select {
		case <-ready:
		case <-d.done:
			t.Fatalf("run --takeover exited: %v\n%s", d.err, d.log)
		default:
			enqueue(fmt.Sprintf("during-%d", i))
			continue
		}
		break
	}
	enqueue("after")

	// The old daemon is detached, not this test's child: no wait signals its exit.
	waitFor(t, 20*time.Second, "the old daemon to exit", func() bool { return !processAlive(oldPID) })
	if log, _ := os.ReadFile(filepath.Join(dir, logFileName)); !strings.Contains(string(log), "daemon stopped") {
		t.Errorf("the old daemon's log does not say it stopped:\n%s", log)
	}
	if state, pid, _ := e.statusOf(); state != "running" || pid != d.cmd.Process.Pid {
		t.Errorf("status: %s pid %d, want running pid %d (the new daemon)", state, pid, d.cmd.Process.Pid)
	}
	arr.mustAwaitAll(t, 20*time.Second, want...)
	if got := e.mustCLI("stop"); !strings.HasPrefix(got, "stopped") {
		t.Errorf("stop: %q", got)
	}
	d.wait(t, 20*time.Second)
}

// processAlive reports whether a process with this PID runs. A detached
// daemon this test process started stays a zombie once it exits, since its
// parent never reaps it: that counts as not running.
func processAlive(pid int) bool {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return false
	}
	st, err := p.Status()
	return err == nil && !slices.Contains(st, process.Zombie)
}
