package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/process"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

func TestParsePIDFile(t *testing.T) {
	started := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		wantPID int
		wantErr bool
	}{
		{"bare", "4242\n", 4242, false},
		{"bare without newline", "4242", 4242, false},
		{"spaces", "  4242  \n", 4242, false},
		{"with json", "4242\n{\"started_at\":\"2026-11-25T18:00:00Z\",\"exe\":\"/usr/bin/difflore\",\"version\":\"v1\"}\n", 4242, false},
		{"crlf", "4242\r\n", 4242, false},
		{"empty", "", 0, true},
		{"blank", "\n\n", 0, true},
		{"negative", "-1\n", 0, true},
		{"zero", "0\n", 0, true},
		{"init", "1\n", 0, true},
		{"garbage", "garbage\n", 0, true},
		{"plus sign", "+42\n", 0, true},
		{"hex", "0x10\n", 0, true},
		{"huge", "99999999999999999999\n", 0, true},
		{"above int32", "4294967296\n", 0, true},
		{"two numbers", "42 43\n", 0, true},
		{"bad json", "4242\n{not json\n", 0, true},
		{"json first", "{\"pid\":4242}\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := parsePIDFile([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePIDFile(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if info.PID != tt.wantPID {
				t.Errorf("parsePIDFile(%q) pid = %d, want %d", tt.in, info.PID, tt.wantPID)
			}
			if tt.name == "with json" && (!info.StartedAt.Equal(started) || info.Exe != "/usr/bin/difflore" || info.Version != "v1") {
				t.Errorf("parsePIDFile(%q) = %+v, want the JSON fields", tt.in, info)
			}
		})
	}
	// What difflore writes, it reads back.
	in := pidInfo{PID: 77, StartedAt: started, Exe: "/x/difflore", Version: "v2", Lock: "fd00:2a"}
	out, err := parsePIDFile(formatPIDFile(in))
	if err != nil || out != in {
		t.Errorf("round trip: got %+v, %v; want %+v", out, err, in)
	}
	// Line 1 is the PID alone, for systemd's PIDFile= and pkill -F.
	if first, _, _ := strings.Cut(string(formatPIDFile(in)), "\n"); first != "77" {
		t.Errorf("line 1 = %q, want %q", first, "77")
	}
}

// TestEnqueueRejectsBadInput: with --strict, bad input exits 2 and writes
// nothing, not even the data home (TestEnqueueKeepsBadInput has the hook's
// default).
func TestEnqueueRejectsBadInput(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", maxPayload) + `"}`
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"not json", "", []string{"enqueue", "--strict", "hello"}},
		{"two values", "", []string{"enqueue", "--strict", `{"a":1} {"b":2}`}},
		{"truncated", `{"a": [1, 2`, []string{"enqueue", "--strict"}},
		{"over 1 MiB", big, []string{"enqueue", "--strict"}},
		{"over 1 MiB as argument", "", []string{"enqueue", "--strict", big}},
		{"empty stdin", "", []string{"enqueue", "--strict"}},
		{"white space only", " \n\t", []string{"enqueue", "--strict"}},
		{"two arguments", "", []string{"enqueue", "--strict", "1", "2"}},
		{"bad id", "", []string{"enqueue", "--strict", "--id", "../../etc/passwd", "{}"}},
		{"empty kind", "", []string{"enqueue", "--strict", "--kind", "", "{}"}},
		{"unknown flag", "", []string{"enqueue", "--strict", "--nope", "{}"}},
		{"unknown flag before --strict", "", []string{"enqueue", "--nope", "--strict", "{}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testHome(t)
			_, stderr, code := cli(t, tt.stdin, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "difflore: ") {
				t.Errorf("stderr = %q, want a 'difflore: ' message", stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("bad input created the data home (stat: %v)", err)
			}
		})
	}
	// With an existing outbox, bad input leaves it unchanged.
	dir := testHome(t)
	mustCLI(t, "enqueue", `{"ok":1}`)
	if _, _, code := cli(t, `{"a":`, "enqueue", "--strict"); code != 2 {
		t.Fatalf("truncated payload: exit %d, want 2", code)
	}
	if c := outboxCounts(t, dir); c.Pending != 1 {
		t.Errorf("pending = %d after one good and one bad enqueue, want 1", c.Pending)
	}
}

func TestEnqueueStoresRepeatedIDOnce(t *testing.T) {
	dir := testHome(t)
	mustCLI(t, "enqueue", "--id", "same", `{"n":1}`)
	mustCLI(t, "enqueue", "--id", "same", `{"n":2}`)
	mustCLI(t, "enqueue", `{"n":3}`)
	if c := outboxCounts(t, dir); c.Pending != 2 {
		t.Errorf("pending = %d, want 2", c.Pending)
	}
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

// statusOf runs status --json and returns the state it reports and its code.
func statusOf(t *testing.T) (state string, pid, code int) {
	t.Helper()
	out, stderr, code := cli(t, "", "status", "--json")
	var rep struct {
		Daemon struct {
			State string `json:"state"`
			PID   int    `json:"pid"`
		} `json:"daemon"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	return rep.Daemon.State, rep.Daemon.PID, code
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

// TestStopNeverSignalsUnverified writes every kind of wrong PID file and
// checks that neither stop nor status takes it for a running daemon: with the
// lock free (no daemon), and with the lock held by a process that the PID
// file does not describe.
func TestStopNeverSignalsUnverified(t *testing.T) {
	victim := startSleeper(t)
	exe, _ := os.Executable()
	vStart := startedAt(t, victim.pid())
	asJSON := func(pid int, started time.Time, exe string) string {
		return string(formatPIDFile(pidInfo{PID: pid, StartedAt: started, Exe: exe, Version: "test"}))
	}
	files := map[string]string{
		"minus one":          "-1\n",
		"zero":               "0\n",
		"one":                "1\n",
		"garbage":            "garbage\n",
		"empty":              "",
		"huge":               "99999999999999999999\n",
		"our own pid":        strconv.Itoa(os.Getpid()) + "\n",
		"own pid as json":    asJSON(os.Getpid(), startedAt(t, os.Getpid()), exe),
		"victim bare":        strconv.Itoa(victim.pid()) + "\n",
		"victim json":        asJSON(victim.pid(), vStart, "difflore"),
		"victim wrong start": asJSON(victim.pid(), vStart.Add(-time.Hour), victim.cmd.Path),
	}
	for _, lockHeldByTest := range []bool{false, true} {
		for name, content := range files {
			t.Run(fmt.Sprintf("%s/locked=%v", name, lockHeldByTest), func(t *testing.T) {
				dir := testHome(t)
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				h, err := openHome(dir, false)
				if err != nil {
					t.Fatal(err)
				}
				if lockHeldByTest {
					// Holding the lock makes the files look like a
					// daemon's: only the identity check stands between
					// them and a signal.
					l := newLock(h)
					if ok, err := l.TryLock(); !ok || err != nil {
						t.Fatalf("lock: %v %v", ok, err)
					}
					defer l.Unlock()
				}
				pidPath := h.path(pidFileName)
				if err := os.WriteFile(pidPath, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				if state, _, _ := statusOf(t); state == "running" {
					t.Errorf("status says running for a pid file holding %q", content)
				}
				out, stderr, code := cli(t, "", "stop", "--grace", "1s")
				if lockHeldByTest {
					if code != 1 || !strings.Contains(stderr, "not signalling") && !strings.Contains(stderr, "cannot be used") {
						t.Errorf("stop with lock held: exit %d, stdout %q, stderr %q; want exit 1 and a refusal", code, out, stderr)
					}
					if _, err := os.Stat(pidPath); err != nil {
						t.Errorf("stop removed the pid file of a held lock: %v", err)
					}
				} else {
					if code != 0 || !strings.HasPrefix(out, "removed stale pid file") {
						t.Errorf("stop with lock free: exit %d, stdout %q, stderr %q; want 'removed stale pid file'", code, out, stderr)
					}
					if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
						t.Errorf("stale pid file still there: %v", err)
					}
				}
				if !victim.alive() {
					t.Fatalf("the unrelated process was killed")
				}
			})
		}
	}
}

// TestKilledDaemonLosesNothing kills a daemon hard and checks that status
// calls its PID file stale and that the next daemon delivers every event.
func TestKilledDaemonLosesNothing(t *testing.T) {
	dir := testHome(t)
	const n = 50
	for i := range n {
		mustCLI(t, "enqueue", "--id", fmt.Sprintf("evt-%02d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	d := startDaemon(t) // No endpoint: the events stay queued.
	if state, pid, code := statusOf(t); state != "running" || pid != d.cmd.Process.Pid || code != 0 {
		t.Fatalf("status = %s pid %d exit %d, want running pid %d exit 0", state, pid, code, d.cmd.Process.Pid)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.wait(t, 10*time.Second)
	if state, pid, code := statusOf(t); state != "stale" || pid != d.cmd.Process.Pid || code != 1 {
		t.Fatalf("after kill: status = %s pid %d exit %d, want stale pid %d exit 1", state, pid, code, d.cmd.Process.Pid)
	}

	out := filepath.Join(t.TempDir(), "out.jsonl")
	d2 := startDaemon(t, "--endpoint", fileURL(out))
	waitFor(t, 20*time.Second, "every event delivered", func() bool { return len(readLines(t, out)) >= n })
	seen := map[string]bool{}
	for _, l := range readLines(t, out) {
		var e struct{ ID string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		seen[e.ID] = true
	}
	if len(seen) != n {
		t.Errorf("delivered %d distinct events, want %d", len(seen), n)
	}
	if got := mustCLI(t, "stop"); got != fmt.Sprintf("stopped (pid %d)\n", d2.cmd.Process.Pid) {
		t.Errorf("stop said %q", got)
	}
	if err := d2.wait(t, 10*time.Second); err != nil {
		t.Errorf("daemon exit after stop: %v\n%s", err, d2.log)
	}
	if _, err := os.Stat(filepath.Join(dir, pidFileName)); !os.IsNotExist(err) {
		t.Errorf("pid file left after a graceful stop: %v", err)
	}
}

// TestStopRefusesRewrittenPIDFile rewrites a running daemon's PID file to
// name an unrelated live process: stop must signal nobody and say why.
func TestStopRefusesRewrittenPIDFile(t *testing.T) {
	dir := testHome(t)
	d := startDaemon(t)
	victim := startSleeper(t)
	pidPath := filepath.Join(dir, pidFileName)
	orig, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	info, err := parsePIDFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	rewrites := map[string]string{
		"bare pid":        fmt.Sprintf("%d\n", victim.pid()),
		"daemon's record": string(formatPIDFile(pidInfo{PID: victim.pid(), StartedAt: info.StartedAt, Exe: info.Exe, Version: info.Version, Lock: info.Lock})),
		"victim's start":  string(formatPIDFile(pidInfo{PID: victim.pid(), StartedAt: startedAt(t, victim.pid()), Exe: info.Exe, Version: info.Version, Lock: info.Lock})),
	}
	for name, content := range rewrites {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(pidPath, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := cli(t, "", "stop", "--grace", "1s")
			if code != 1 || !strings.Contains(stderr, "not signalling") {
				t.Errorf("stop: exit %d, stderr %q; want exit 1 and 'not signalling'", code, stderr)
			}
			if state, _, _ := statusOf(t); state == "running" {
				t.Errorf("status says running with a pid file naming another process")
			}
			if !victim.alive() {
				t.Fatal("the unrelated process was signalled")
			}
			if !d.alive() {
				t.Fatal("the daemon was signalled through a pid file that does not describe it")
			}
		})
	}
	if err := os.WriteFile(pidPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "stop")
	d.wait(t, 10*time.Second)
}

// TestTenConcurrentRuns starts ten daemons for one home at once: the lock
// lets exactly one run, and the others exit 1 saying so.
func TestTenConcurrentRuns(t *testing.T) {
	testHome(t)
	type outcome struct {
		d     *daemonProc
		ready bool
	}
	results := make([]outcome, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			d, ready := spawnDaemon(t)
			select {
			case <-ready:
				results[i] = outcome{d, true}
			case <-d.done:
				results[i] = outcome{d, false}
			case <-time.After(30 * time.Second):
				t.Errorf("daemon %d neither ready nor exited after 30s", i)
			}
		})
	}
	wg.Wait()
	var winners int
	for i, r := range results {
		switch {
		case r.d == nil:
		case r.ready:
			winners++
		default:
			if code := r.d.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.d.log.String(), "already running") {
				t.Errorf("daemon %d: exit %d, log %q; want exit 1 'already running'", i, code, r.d.log)
			}
		}
	}
	if winners != 1 {
		t.Fatalf("%d daemons running, want exactly 1", winners)
	}
	mustCLI(t, "stop")
}

// TestRunSurvivesClosedStderr starts a foreground daemon whose stderr is a
// pipe that nobody reads any more, as in 'difflore run 2>&1 | head -1': its
// next log line goes to a broken pipe. Logging must not kill it (Go ends a
// program that writes to a broken pipe on fd 1 or 2 with SIGPIPE unless it
// handles the signal): it delivers, and stops cleanly when asked.
func TestRunSurvivesClosedStderr(t *testing.T) {
	dir := testHome(t)
	ep := newEndpoint(t, always(answer{status: 200}))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := command(t, "run", "--endpoint", ep.URL)
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
		mustCLI(t, "enqueue", "--id", fmt.Sprintf("evt-%d", i), `{}`)
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
	if got, want := mustCLI(t, "stop"), fmt.Sprintf("stopped (pid %d)\n", cmd.Process.Pid); got != want {
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

// TestStopCopiedHome copies the data home of a running daemon, PID file and
// all (cp -a, as a backup or a migration does), while something else holds
// the copy's lock: stop in the copy must not signal the original's daemon,
// which the copied PID file describes exactly, and status there must say
// it cannot tell (exit 4). Nor is a PID file without the record of its lock
// file, as older versions wrote, ever signalled on.
func TestStopCopiedHome(t *testing.T) {
	orig := testHome(t)
	d := startDaemon(t)
	copied := filepath.Join(t.TempDir(), "copy")
	if runtime.GOOS == "windows" {
		// No cp -a, and the daemon's locks keep parts of its files from
		// being read: the PID file is what matters.
		if err := os.Mkdir(copied, 0o700); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(orig, pidFileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copied, pidFileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
	} else if out, err := exec.Command("cp", "-a", orig, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	hc, err := openHome(copied, false)
	if err != nil {
		t.Fatal(err)
	}
	// The test holds the copy's lock, as a command that only looks does
	// for an instant, or a daemon that has not yet written its PID file.
	l := newLock(hc)
	if ok, err := l.TryLock(); !ok || err != nil {
		t.Fatalf("lock the copy: %v %v", ok, err)
	}
	defer l.Unlock()

	t.Setenv("DIFFLORE_HOME", copied)
	out, errOut, code := runProc(t, command(t, "stop", "--grace", "1s"), 30*time.Second)
	if code != 1 || !strings.Contains(errOut, "not signalling") {
		t.Errorf("stop in the copy: exit %d, stdout %q, stderr %q; want exit 1, not signalling anyone", code, out, errOut)
	}
	if !d.alive() {
		t.Fatalf("stop in the copied home stopped the original's daemon:\n%s", d.log)
	}
	if state, _, code := statusOf(t); state != "unknown" || code != 4 {
		t.Errorf("status in the copy: %s, exit %d; want unknown, exit 4", state, code)
	}

	// The original's own PID file, less the record of its lock file.
	t.Setenv("DIFFLORE_HOME", orig)
	pidPath := filepath.Join(orig, pidFileName)
	data, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	_, line2, _ := strings.Cut(string(data), "\n")
	if err := json.Unmarshal([]byte(line2), &meta); err != nil {
		t.Fatal(err)
	}
	if _, ok := meta["lock"]; !ok {
		t.Fatalf("pid file line 2 does not record the lock file: %s", line2)
	}
	delete(meta, "lock")
	old, _ := json.Marshal(meta)
	first, _, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(pidPath, []byte(first+"\n"+string(old)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runProc(t, command(t, "stop", "--grace", "1s"), 30*time.Second)
	if code != 1 || !strings.Contains(errOut, "not signalling") {
		t.Errorf("stop with a pid file that does not record its lock: exit %d, stdout %q, stderr %q; want exit 1", code, out, errOut)
	}
	if !d.alive() {
		t.Fatalf("stop signalled on a pid file that does not record its lock file:\n%s", d.log)
	}
	if state, _, code := statusOf(t); state != "unknown" || code != 4 {
		t.Errorf("status with a pid file that does not record its lock: %s, exit %d; want unknown, exit 4", state, code)
	}

	// The daemon's own PID file, as it wrote it, still lets stop stop it.
	if err := os.WriteFile(pidPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustCLI(t, "stop"); got != fmt.Sprintf("stopped (pid %d)\n", d.cmd.Process.Pid) {
		t.Errorf("stop in the original home said %q", got)
	}
	d.wait(t, 15*time.Second)
}

// TestRunWaitsForLockedOutbox starts the daemon while another process
// holds the outbox exclusively (an sqlite3 shell in a transaction, a
// backup): it must say in its log that it waits and keep trying, stop
// promptly when asked meanwhile, and deliver once the lock is gone. It
// used to give up after 5 s and advise moving the outbox aside, which
// strands every event queued in it.
func TestRunWaitsForLockedOutbox(t *testing.T) {
	home := testHome(t)
	mustCLI(t, "enqueue", "--id", "queued", `{"n":1}`)
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
	d, log := startLogged(t, "run", "--endpoint", fileURL(out))
	log.waitFor(t, waiting)
	if got := mustCLI(t, "stop"); got != fmt.Sprintf("stopped (pid %d)\n", d.Process.Pid) {
		t.Errorf("stop while the daemon waits said %q", got)
	}
	log.waitExit(t)
	if code := d.ProcessState.ExitCode(); code != 0 {
		t.Errorf("daemon stopped while waiting: exit %d, want 0\n%s", code, log)
	}

	// Once the lock is gone, it goes on and delivers.
	_, log = startLogged(t, "run", "--endpoint", fileURL(out))
	log.waitFor(t, waiting)
	if err := sqlitex.ExecuteTransient(conn, "ROLLBACK", nil); err != nil {
		t.Fatal(err)
	}
	conn.Close() // Exclusive locking mode holds the lock until then.
	log.waitFor(t, "daemon ready")
	waitFor(t, 20*time.Second, "the queued event delivered", func() bool { return len(readLines(t, out)) == 1 })
	mustCLI(t, "stop")
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

// startLogged starts difflore with args as a child and reads its standard
// error. The child is killed when the test ends, if still running.
func startLogged(t *testing.T, args ...string) (*exec.Cmd, *loggedProc) {
	t.Helper()
	cmd := command(t, args...)
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
