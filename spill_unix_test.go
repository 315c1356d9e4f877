//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSpillReplaySkipsFIFO puts a FIFO where a spill file would be: replay
// must not wait for a writer that never comes, and sets it aside,
// recorded as a dead letter.
func TestSpillReplaySkipsFIFO(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	writeSpillFiles(t, h, "s", 1, `{}`)
	fifo := filepath.Join(h.path(spillDirName), "fifo.json")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	done := make(chan int, 1)
	var n int
	go func() { done <- replayAll(t, h, ob) }()
	select {
	case n = <-done:
	case <-time.After(time.Minute):
		t.Fatal("spill replay blocked on a FIFO")
	}
	if n != 2 {
		t.Errorf("replayed %d, want the spill file and the dead letter that records the FIFO", n)
	}
	if fi, err := os.Lstat(fifo + ".notfile"); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was not set aside as .notfile: %v", err)
	}
	if dead, err := ob.deadLetters(10); err != nil || len(dead) != 1 || !strings.Contains(dead[0].LastError, "not a file") {
		t.Errorf("dead letters %+v, %v; want one that records the FIFO", dead, err)
	}
}
