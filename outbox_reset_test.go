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
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	d := startDaemon(t, "--endpoint", ep.URL)
	mustCLI(t, "enqueue", "--id", "before", `{"n":1}`)
	arr.await(t, "before", 10*time.Second)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(home, dbFileName+suffix)); err != nil && !os.IsNotExist(err) {
			// Windows does not delete a file another process has open.
			t.Skipf("cannot delete the open outbox here: %v", err)
		}
	}
	mustCLI(t, "enqueue", "--id", "after", `{"n":2}`)
	// enqueue wakes the daemon, which looks for a replaced outbox on every
	// wake-up.
	arr.await(t, "after", 15*time.Second)
	status := mustCLI(t, "status")
	if !strings.Contains(status, "0 pending") || !strings.Contains(status, "endpoint: "+ep.URL) {
		t.Errorf("status after the reset:\n%s", status)
	}
	mustCLI(t, "stop")
	if err := d.wait(t, 15*time.Second); err != nil {
		t.Errorf("daemon: %v\n%s", err, d.log)
	}
}
