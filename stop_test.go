package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStopNeverSignalsUnverified writes every kind of wrong PID file and
// checks that neither stop nor status takes it for a running daemon: with the
// lock free (no daemon), and with the lock held by a process that the PID
// file does not describe.
func TestStopNeverSignalsUnverified(t *testing.T) {
	t.Parallel()
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
			// Not in parallel: the victim sleeps two minutes at most, and
			// parallel subtests wait for every other parallel test.
			t.Run(fmt.Sprintf("%s/locked=%v", name, lockHeldByTest), func(t *testing.T) {
				e := newTestEnv(t)
				e.useQuickWaits()
				dir := e.home
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
				if state, _, _ := e.statusOf(); state == "running" {
					t.Errorf("status says running for a pid file holding %q", content)
				}
				out, stderr, code := e.cli("", "stop", "--grace", "1s")
				if lockHeldByTest {
					if code != 1 || !strings.Contains(stderr, "not signalling") && !strings.Contains(stderr, "cannot be used") {
						t.Errorf("stop with lock held: exit %d, stdout %q, stderr %q; want exit 1 and a refusal", code, out, stderr)
					}
					if _, err := os.Stat(pidPath); err != nil {
						t.Errorf("stop removed the pid file of a held lock: %v", err)
					}
					// run --takeover stops a daemon as stop does, and so
					// refuses the same holders.
					out, stderr, code = e.cli("", "run", "--takeover")
					if code != 1 || !strings.Contains(stderr, "not signalling") && !strings.Contains(stderr, "cannot be used") {
						t.Errorf("run --takeover with lock held: exit %d, stdout %q, stderr %q; want exit 1 and a refusal", code, out, stderr)
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

// TestStopRefusesRewrittenPIDFile rewrites a running daemon's PID file to
// name an unrelated live process: stop must signal nobody and say why.
func TestStopRefusesRewrittenPIDFile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	d := e.startDaemon()
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
			_, stderr, code := e.cli("", "stop", "--grace", "1s")
			if code != 1 || !strings.Contains(stderr, "not signalling") {
				t.Errorf("stop: exit %d, stderr %q; want exit 1 and 'not signalling'", code, stderr)
			}
			if state, _, _ := e.statusOf(); state == "running" {
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
	e.mustCLI("stop")
	d.wait(t, 10*time.Second)
}

// TestStopCopiedHome copies the data home of a running daemon, PID file and
// all (cp -a, as a backup or a migration does), while something else holds
// the copy's lock: stop in the copy must not signal the original's daemon,
// which the copied PID file describes exactly, and status there must say
// it cannot tell (exit 4). Nor is a PID file without the record of its lock
// file, as older versions wrote, ever signalled on.
func TestStopCopiedHome(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	orig := e.home
	e.useQuickWaits()
	d := e.startDaemon()
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

	e.setenv("DIFFLORE_HOME", copied)
	out, errOut, code := runProc(t, e.command("stop", "--grace", "1s"), 30*time.Second)
	if code != 1 || !strings.Contains(errOut, "not signalling") {
		t.Errorf("stop in the copy: exit %d, stdout %q, stderr %q; want exit 1, not signalling anyone", code, out, errOut)
	}
	if !d.alive() {
		t.Fatalf("stop in the copied home stopped the original's daemon:\n%s", d.log)
	}
	if state, _, code := e.statusOf(); state != "unknown" || code != 4 {
		t.Errorf("status in the copy: %s, exit %d; want unknown, exit 4", state, code)
	}

	// The original's own PID file, less the record of its lock file.
	e.setenv("DIFFLORE_HOME", orig)
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
	out, errOut, code = runProc(t, e.command("stop", "--grace", "1s"), 30*time.Second)
	if code != 1 || !strings.Contains(errOut, "not signalling") {
		t.Errorf("stop with a pid file that does not record its lock: exit %d, stdout %q, stderr %q; want exit 1", code, out, errOut)
	}
	if !d.alive() {
		t.Fatalf("stop signalled on a pid file that does not record its lock file:\n%s", d.log)
	}
	if state, _, code := e.statusOf(); state != "unknown" || code != 4 {
		t.Errorf("status with a pid file that does not record its lock: %s, exit %d; want unknown, exit 4", state, code)
	}

	// The daemon's own PID file, as it wrote it, still lets stop stop it.
	if err := os.WriteFile(pidPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := e.mustCLI("stop"); got != fmt.Sprintf("stopped (pid %d)\n", d.cmd.Process.Pid) {
		t.Errorf("stop in the original home said %q", got)
	}
	d.wait(t, 15*time.Second)
}
