package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEnsureDaemonStartsOne enqueues with --ensure-daemon: the first call
// starts a daemon, which delivers; later calls find it running.
func TestEnsureDaemonStartsOne(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.setenv("DIFFLORE_CLOUD_URL", ep.URL)
	// Each enqueue runs as a hook runs it, a process of its own, whose
	// environment (with the endpoint) the daemon it starts inherits.
	hook := func(payload string) {
		t.Helper()
		if out, errOut, code := runProc(t, e.command("enqueue", "--ensure-daemon", payload), time.Minute); code != 0 {
			t.Fatalf("enqueue --ensure-daemon: exit %d\n%s%s", code, out, errOut)
		}
	}
	hook(`{"n":1}`)
	t.Cleanup(func() { e.cli("", "stop") })
	arr.awaitN(t, 1, 20*time.Second)
	state, pid, _ := e.statusOf()
	if state != "running" {
		t.Fatalf("status %s after --ensure-daemon, want running", state)
	}
	hook(`{"n":2}`)
	arr.awaitN(t, 2, 20*time.Second)
	if _, pid2, _ := e.statusOf(); pid2 != pid {
		t.Errorf("daemon pid changed from %d to %d: a second daemon was started", pid, pid2)
	}
	if got := e.mustCLI("stop"); !strings.HasPrefix(got, "stopped") {
		t.Errorf("stop: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, logFileName)); err != nil {
		t.Errorf("auto-started daemon wrote no log: %v", err)
	}
}

// TestDetachReadyAfterFirstPass: 'run --detach' returns once the daemon has
// made its first delivery pass over what was pending, so that what a user
// looks at next (the README's tour cats the file) already shows it. The
// endpoint answers slowly, so that a daemon that reported ready before its
// first pass would be caught with the events still queued.
func TestDetachReadyAfterFirstPass(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.mustCLI("enqueue", `{"n":1}`)
	e.mustCLI("enqueue", `{"n":2}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // A slow endpoint, not a wait.
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	e.mustCLI("run", "--detach", "--endpoint", srv.URL)
	t.Cleanup(func() { e.cli("", "stop") })
	if c := outboxCounts(t, dir); c.Pending != 0 || c.Inflight != 0 {
		t.Errorf("right after run --detach returned: %+v; want the first pass done, nothing pending or in flight", c)
	}
	e.mustCLI("stop")
}

// BenchmarkEnsureDaemonProbe measures what --ensure-daemon adds to a hook
// when the daemon runs: one lock probe. The target is well under a
// millisecond; the baseline is a bare stat of the same file, the cheapest
// look at it there is.
func BenchmarkEnsureDaemonProbe(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "home")
	h, err := openHome(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	held := newLock(h) // Stands for the running daemon.
	if ok, err := held.TryLock(); !ok || err != nil {
		b.Fatal(ok, err)
	}
	defer held.Unlock()
	b.Run("stat", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.Stat(h.path(lockFileName)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/probe")
	})
	b.Run("probe", func(b *testing.B) {
		for b.Loop() {
			if ok, err := lockHeld(h); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/probe")
	})
}
