package main

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentEnqueue runs 8 hooks at once, each enqueueing 12 events in
// processes of their own, while the daemon drains to an endpoint: no hook may
// fail or print anything, and every event must arrive exactly once.
func TestConcurrentEnqueue(t *testing.T) {
	t.Parallel()
	const writers, each = 8, 12
	e := newTestEnv(t)
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	d := e.startDaemon("--endpoint", ep.URL, "--batch", "7")

	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-e%02d", w, i)
				cmd := e.command("enqueue", "--kind", "race", "--id", id)
				cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"writer":%d,"n":%d}`, w, i))
				_, errOut, code := runProc(t, cmd, 30*time.Second)
				if code != 0 || errOut != "" {
					t.Errorf("enqueue %s: exit %d, stderr %q", id, code, errOut)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d enqueues from %d writers in %s", writers*each, writers, time.Since(start).Round(time.Millisecond))

	arr.awaitN(t, writers*each, 30*time.Second)
	e.mustCLI("stop")
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Errorf("daemon: %v\n%s", err, d.log)
	}
	seen := arr.counts()
	for w := range writers {
		for i := range each {
			id := fmt.Sprintf("w%d-e%02d", w, i)
			if seen[id] != 1 {
				t.Errorf("event %s delivered %d times, want once", id, seen[id])
			}
		}
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct events delivered, want %d", len(seen), writers*each)
	}
	if got := e.mustCLI("outbox", "list"); !strings.HasPrefix(got, "0 pending, 0 inflight, 0 dead\n") {
		t.Errorf("outbox after the drain:\n%s", got)
	}
}

var alreadyRunningRE = regexp.MustCompile(`^difflore: already running \(pid (\d+)\)\nhint: 'difflore stop' stops it; 'difflore run --takeover' replaces it\n$`)

// TestRacingRuns starts ten daemons for one home at once: the lock lets
// exactly one run, and the other nine exit 1 naming it.
func TestRacingRuns(t *testing.T) {
	t.Parallel()
	const n = 10
	e := newTestEnv(t)
	// Earlier lives leave a stale PID file behind; a loser must not name it.
	if err := writeFileAtomic(filepath.Join(e.mustHome(), pidFileName), []byte("999999\n")); err != nil {
		t.Fatal(err)
	}
	type res struct {
		d     *daemonProc
		ready <-chan struct{}
	}
	procs := make([]res, n)
	for i := range procs {
		d, ready := e.spawnDaemon()
		procs[i] = res{d: d, ready: ready}
	}
	var winner *daemonProc
	losers := 0
	for i, p := range procs {
		select {
		case <-p.ready:
			if winner != nil {
				t.Fatalf("two daemons ready: pids %d and %d", winner.cmd.Process.Pid, p.d.cmd.Process.Pid)
			}
			winner = p.d
		case <-p.d.done:
			losers++
			var ee *exec.ExitError
			if !errors.As(p.d.err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("run %d: exit %v, want exit 1", i, p.d.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("run %d neither ready nor gone after 30s\n%s", i, p.d.log)
		}
	}
	if winner == nil {
		t.Fatal("no daemon running")
	}
	for i, p := range procs {
		if p.d == winner {
			continue
		}
		m := alreadyRunningRE.FindStringSubmatch(p.d.log.String())
		if m == nil || m[1] != fmt.Sprint(winner.cmd.Process.Pid) {
			t.Errorf("run %d said %q, want \"difflore: already running (pid %d)\"", i, p.d.log, winner.cmd.Process.Pid)
		}
	}
	if losers != n-1 || !winner.alive() {
		t.Fatalf("%d losers, winner alive %v", losers, winner.alive())
	}
	out := e.mustCLI("stop")
	if want := fmt.Sprintf("stopped (pid %d)\n", winner.cmd.Process.Pid); out != want {
		t.Errorf("stop said %q, want %q", out, want)
	}
	winner.wait(t, 15*time.Second)
}

// TestStopRacingRun runs stop at each step of a daemon's start-up, aimed
// with pause points: stop must never fail or signal anyone else, and what it
// says must match what happened there.
//   - Before the daemon takes the lock, stop finds none: "not running", and
//     the daemon comes up and keeps running.
//   - Between the lock and the PID file, stop cannot verify the holder; it
//     looks again, and once the PID file names the daemon it stops it.
//   - With the PID file written, before the daemon is ready, stop finds the
//     daemon and stops it.
func TestStopRacingRun(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	bystander := startSleeper(t)

	t.Run("before the lock", func(t *testing.T) {
		d := e.spawnPaused([]string{"run-start"}, "run")
		d.awaitPause(t, "run-start", 30*time.Second)
		if out, errOut, code := e.cli("", "stop"); code != 0 || out != "not running\n" {
			t.Fatalf("stop before the daemon took the lock: exit %d, %q %q; want not running", code, out, errOut)
		}
		d.resume(t)
		d.awaitReady(t, 30*time.Second)
		if got := e.mustCLI("stop"); !strings.HasPrefix(got, "stopped (pid ") {
			t.Fatalf("the second stop said %q", got)
		}
		d.wait(t, 15*time.Second)
	})

	t.Run("locked, no pid file yet", func(t *testing.T) {
		d := e.spawnPaused([]string{"run-locked", "run-pid-written"}, "run")
		d.awaitPause(t, "run-locked", 30*time.Second)
		stop := e.spawnPaused([]string{"stop-unverified"}, "stop")
		stop.awaitPause(t, "stop-unverified", 30*time.Second) // it saw the lock held, and no daemon it could verify
		d.resume(t)
		d.awaitPause(t, "run-pid-written", 30*time.Second)
		stop.resume(t) // it looks again, finds the daemon and asks it to stop
		d.resume(t)
		if err := stop.wait(t, 30*time.Second); err != nil {
			t.Fatalf("stop: %v\n%s", err, stop.log)
		}
		if err := d.wait(t, 15*time.Second); err != nil {
			t.Errorf("the stopped daemon exited with %v\n%s", err, d.log)
		}
		if out := stop.stdout.String(); !strings.HasPrefix(out, "stopped (pid ") {
			t.Errorf("stop said %q, want stopped", out)
		}
	})

	t.Run("pid file written, not ready", func(t *testing.T) {
		d := e.spawnPaused([]string{"run-pid-written"}, "run")
		d.awaitPause(t, "run-pid-written", 30*time.Second)
		stop := e.spawnPaused([]string{"stop-verified"}, "stop")
		stop.awaitPause(t, "stop-verified", 30*time.Second) // it found the daemon that the PID file names
		// The daemon listens for the request from before it writes its PID
		// file, so it stops whether the request comes before it goes on or
		// after.
		stop.resume(t)
		d.resume(t)
		if err := stop.wait(t, 30*time.Second); err != nil {
			t.Fatalf("stop: %v\n%s", err, stop.log)
		}
		if err := d.wait(t, 15*time.Second); err != nil {
			t.Errorf("the stopped daemon exited with %v\n%s", err, d.log)
		}
		if out := stop.stdout.String(); !strings.HasPrefix(out, "stopped (pid ") {
			t.Errorf("stop said %q, want stopped", out)
		}
	})

	if !bystander.alive() {
		t.Error("an unrelated process was killed")
	}
}

// TestStopTwiceAtOnce runs two stops at the same moment: both exit 0, at
// least one stops the daemon, the other stops it too or finds it gone, and
// no one else is signalled.
func TestStopTwiceAtOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	bystander := startSleeper(t)
	for round := range 3 {
		d := e.startDaemon()
		var wg sync.WaitGroup
		outs := make([]string, 2)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, errOut, code := runProc(t, e.command("stop"), 30*time.Second)
				if code != 0 {
					t.Errorf("round %d: stop %d: exit %d: %s", round, i, code, errOut)
				}
				outs[i] = out
			}()
		}
		wg.Wait()
		d.wait(t, 15*time.Second)
		stopped := 0
		for _, out := range outs {
			switch out {
			case fmt.Sprintf("stopped (pid %d)\n", d.cmd.Process.Pid):
				stopped++
			case "not running\n":
			default:
				t.Errorf("round %d: stop said %q", round, out)
			}
		}
		if stopped == 0 {
			t.Errorf("round %d: neither stop says it stopped the daemon: %q", round, outs)
		}
		t.Logf("round %d: %q", round, outs)
	}
	if !bystander.alive() {
		t.Error("an unrelated process was killed")
	}
}

// TestRunRacingLookers starts a daemon while another command looks at the
// lock, as status and stop do: they take the free lock for an instant to see
// whether it is held. The test is that look, aimed with a pause point: it
// holds the lock until the daemon has found it held with no daemon behind
// it, then lets go. The daemon must not give up and report a daemon that
// does not exist; it looks again and starts.
func TestRunRacingLookers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	h := home{dir: e.mustHome()}
	for round := range 3 {
		look := newLock(h)
		if ok, err := tryLock(look); !ok || err != nil {
			t.Fatalf("round %d: the test's look at the lock: %v, %v", round, ok, err)
		}
		d := e.spawnPaused([]string{"lock-busy"}, "run")
		d.awaitPause(t, "lock-busy", 30*time.Second)
		look.Unlock()
		d.resume(t)
		d.awaitReady(t, 30*time.Second)
		if out, errOut, code := e.cli("", "stop"); code != 0 || !strings.HasPrefix(out, "stopped") {
			t.Errorf("round %d: stop: exit %d: %s%s", round, code, out, errOut)
		}
		d.wait(t, 15*time.Second)
	}
}

// TestConcurrentEnqueueFreshHome starts many hooks at once on a home that
// has no outbox yet, as on the first prompt after installation: they race
// to create the database and its schema, and none may fail or spill.
func TestConcurrentEnqueueFreshHome(t *testing.T) {
	t.Parallel()
	// Only each writer's first enqueue races to create the outbox; the
	// second writes into what the race left.
	const writers, each = 8, 2
	for round := range 3 {
		e := newTestEnv(t)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, errOut, code := runProc(t, e.command("enqueue", "--id", fmt.Sprintf("r%d-w%d-e%d", round, w, i), `{}`), 30*time.Second)
					if code != 0 || errOut != "" {
						t.Errorf("round %d: enqueue: exit %d, stderr %q", round, code, errOut)
					}
				}
			}()
		}
		wg.Wait()
		if out := e.mustCLI("outbox", "list"); !strings.HasPrefix(out, fmt.Sprintf("%d pending, 0 inflight, 0 dead\n", writers*each)) {
			t.Errorf("round %d: outbox:\n%s", round, out)
		}
	}
}

// TestRacingDetachedRuns starts five background daemons at once, as five
// hooks that each make sure a daemon runs would: one starts, and the others
// exit 1 naming it.
func TestRacingDetachedRuns(t *testing.T) {
	t.Parallel()
	const n = 5
	e := newTestEnv(t)
	t.Cleanup(func() { e.cli("", "stop") })
	type result struct {
		out, errOut string
		code        int
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := runProc(t, e.command("run", "--detach"), 60*time.Second)
			results[i] = result{out, errOut, code}
		}()
	}
	wg.Wait()
	startedRE := regexp.MustCompile(`^started \(pid (\d+)\)\n$`)
	var pid string
	for _, r := range results {
		if m := startedRE.FindStringSubmatch(r.out); m != nil && r.code == 0 {
			if pid != "" {
				t.Fatalf("two daemons started: pids %s and %s", pid, m[1])
			}
			pid = m[1]
		}
	}
	if pid == "" {
		t.Fatalf("no daemon started: %+v", results)
	}
	for _, r := range results {
		if r.code == 0 {
			continue
		}
		m := alreadyRunningRE.FindStringSubmatch(r.errOut)
		if r.code != 1 || m == nil || m[1] != pid {
			t.Errorf("a losing run: exit %d, stderr %q; want exit 1 and already running (pid %s)", r.code, r.errOut, pid)
		}
	}
	if out := e.mustCLI("stop"); out != "stopped (pid "+pid+")\n" {
		t.Errorf("stop said %q, want the daemon that started (pid %s)", out, pid)
	}
}
