package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEnsureDaemonStartsOne enqueues with --ensure-daemon: the first call
// starts a daemon, which delivers; later calls find it running.
func TestEnsureDaemonStartsOne(t *testing.T) {
	dir := testHome(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	t.Setenv("DIFFLORE_CLOUD_URL", fileURL(out))
	// The daemon is a re-exec of the test binary, which acts as difflore
	// when asMainEnv is set in its environment.
	t.Setenv(asMainEnv, "1")
	mustCLI(t, "enqueue", "--ensure-daemon", `{"n":1}`)
	t.Cleanup(func() { cli(t, "", "stop") })
	waitFor(t, 20*time.Second, "the auto-started daemon to deliver", func() bool { return len(readLines(t, out)) == 1 })
	state, pid, _ := statusOf(t)
	if state != "running" {
		t.Fatalf("status %s after --ensure-daemon, want running", state)
	}
	mustCLI(t, "enqueue", "--ensure-daemon", `{"n":2}`)
	waitFor(t, 20*time.Second, "the second event", func() bool { return len(readLines(t, out)) == 2 })
	if _, pid2, _ := statusOf(t); pid2 != pid {
		t.Errorf("daemon pid changed from %d to %d: a second daemon was started", pid, pid2)
	}
	if got := mustCLI(t, "stop"); !strings.HasPrefix(got, "stopped") {
		t.Errorf("stop: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, logFileName)); err != nil {
		t.Errorf("auto-started daemon wrote no log: %v", err)
	}
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
