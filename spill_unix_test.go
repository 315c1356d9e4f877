//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSpillReplaySkipsFIFO puts a FIFO where a spill file would be: replay
// must not wait for a writer that never comes, and sets it aside.
func TestSpillReplaySkipsFIFO(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	writeSpillFiles(t, h, "s", 1, `{}`)
	fifo := filepath.Join(h.path(spillDirName), "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	done := make(chan int, 1)
	go func() { done <- replayAll(t, h, ob) }()
	select {
	case n := <-done:
		if n != 1 {
			t.Errorf("replayed %d, want the one spill file", n)
		}
	case <-time.After(time.Minute):
		t.Fatal("spill replay blocked on a FIFO")
	}
	if fi, err := os.Lstat(fifo + ".bad"); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was not set aside as .bad: %v", err)
	}
}
