//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDetachedStdioFollowsLog moves a detached daemon's log away, as
// logrotate does, and tells the daemon (SIGHUP) to write a new one; then
// makes it die as a panic does, with the Go runtime writing its stack
// traces to standard error (SIGQUIT): they must land in the daemon.log
// now in place, not in the file moved away.
func TestDetachedStdioFollowsLog(t *testing.T) {
	dir := testHome(t)
	useQuickWaits(t)
	t.Setenv(asMainEnv, "1") // The detached child is this test binary.
	out := mustCLI(t, "run", "--detach")
	t.Cleanup(func() { cli(t, "", "stop") })
	var pid int
	if _, err := fmt.Sscanf(out, "started (pid %d)", &pid); err != nil {
		t.Fatalf("run --detach said %q: %v", out, err)
	}
	log := filepath.Join(dir, logFileName)
	stderrIs := func(path string) bool {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid))
		if err != nil {
			t.Skipf("cannot read the daemon's descriptors: %v", err)
		}
		return target == path
	}
	waitFor(t, 30*time.Second, "the daemon's standard error in daemon.log", func() bool { return stderrIs(log) })

	moved := log + ".moved"
	if err := os.Rename(log, moved); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a new daemon.log", func() bool {
		fi, err := os.Stat(log)
		return err == nil && fi.Size() > 0
	})
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	read := func(path string) string { b, _ := os.ReadFile(path); return string(b) }
	waitFor(t, 30*time.Second, "the daemon's stack traces in a log", func() bool {
		return strings.Contains(read(log), "SIGQUIT") || strings.Contains(read(moved), "SIGQUIT")
	})
	if !strings.Contains(read(log), "SIGQUIT") {
		t.Errorf("the stack traces went to the log moved away, not to daemon.log:\n%s", read(log))
	}
}
