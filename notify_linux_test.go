package main

import (
	"testing"
	"time"
)

// TestWatchCommitsSeesAnotherProcessCommit checks that a commit through
// another connection (as enqueue makes) is announced, and that nothing is
// announced while no one writes.
func TestWatchCommitsSeesAnotherProcessCommit(t *testing.T) {
	h, err := openHome(testHome(t), true)
	if err != nil {
		t.Fatal(err)
	}
	ob := mustOutbox(t, h, time.Now) // Keeps the WAL in place, as the daemon does.
	defer ob.Close()
	changes, stop, err := watchCommits(h)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-changes:
		t.Fatal("a notice with no commit")
	case <-time.After(100 * time.Millisecond):
	}
	if err := enqueueDB(h.path(dbFileName), time.Second, "e1", "k", []byte(`{}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice of a commit after 5s")
	}
}
