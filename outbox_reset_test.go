package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutboxDeletedWhileRunning deletes the outbox under a running daemon,
// as a user resetting the queue would. enqueue then creates a new file; the
// daemon must notice and drain it, not keep reading the deleted one while
// the new events wait for a restart.
func TestOutboxDeletedWhileRunning(t *testing.T) {
	home := testHome(t)
	useQuickWaits(t)
	out := filepath.Join(t.TempDir(), "out")
	d := startDaemon(t, "--endpoint", fileURL(out))
	mustCLI(t, "enqueue", "--id", "before", `{"n":1}`)
	waitFor(t, 10*time.Second, "the first event", func() bool { return len(readLines(t, out)) == 1 })
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(home, dbFileName+suffix)); err != nil && !os.IsNotExist(err) {
			// Windows does not delete a file another process has open.
			t.Skipf("cannot delete the open outbox here: %v", err)
		}
	}
	mustCLI(t, "enqueue", "--id", "after", `{"n":2}`)
	// enqueue wakes the daemon, which looks for a replaced outbox on every
	// wake-up.
	waitFor(t, 15*time.Second, "the event enqueued after the reset", func() bool { return len(readLines(t, out)) == 2 })
	if got := readLines(t, out); !strings.Contains(got[1], `"id":"after"`) {
		t.Errorf("second line: %s", got[1])
	}
	status := mustCLI(t, "status")
	if !strings.Contains(status, "0 pending") || !strings.Contains(status, "endpoint: file:") {
		t.Errorf("status after the reset:\n%s", status)
	}
	mustCLI(t, "stop")
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Errorf("daemon: %v\n%s", err, d.log)
	}
}
