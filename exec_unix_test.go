//go:build unix

package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWriteExecutableWhileForking writes programs and runs each at once,
// while another goroutine forks without pause, as parallel tests do: no
// start may fail with "text file busy" (golang/go#22315), the failure
// that ended a CI run in TestHookAttribution.
func TestWriteExecutableWhileForking(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	forked := make(chan int)
	go func() {
		n := 0
		defer func() { forked <- n }()
		for ctx.Err() == nil {
			if exec.Command("/bin/true").Run() == nil {
				n++
			}
		}
	}()
	dir := t.TempDir()
	busy := 0
	deadline := time.Now().Add(2 * time.Second)
	runs := 0
	for ; runs < 150 && time.Now().Before(deadline); runs++ {
		path := filepath.Join(dir, "prog"+strconv.Itoa(runs))
		writeExecutable(t, path, []byte("#!/bin/sh\nexit 0\n"))
		if err := exec.Command(path).Run(); errors.Is(err, syscall.ETXTBSY) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	n := <-forked
	if n == 0 {
		t.Fatal("no process was forked while the programs were written: the race was not run")
	}
	if busy > 0 {
		t.Errorf("%d of %d programs were busy when started, while %d processes were forked", busy, runs, n)
	}
	t.Logf("%d programs written and run while %d processes were forked", runs, n)
}
