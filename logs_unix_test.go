//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
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
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	e.useQuickWaits()
	// 'run --detach' starts the detached daemon in its own environment:
	// run from a child in e's, the daemon gets e's home and waits.
	out, errOut, code := runProc(t, e.command("run", "--detach"), time.Minute)
	if code != 0 {
		t.Fatalf("run --detach: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Cleanup(func() { e.cli("", "stop") })
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
	// The detached daemon redirects its own descriptors and signals nothing: poll /proc.
	waitFor(t, 30*time.Second, "the daemon's standard error in daemon.log", func() bool { return stderrIs(log) })

	moved := log + ".moved"
	if err := os.Rename(log, moved); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// This test is about daemon.log itself, which the detached daemon writes with no other signal.
	waitFor(t, 30*time.Second, "a new daemon.log", func() bool {
		fi, err := os.Stat(log)
		return err == nil && fi.Size() > 0
	})
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	read := func(path string) string { b, _ := os.ReadFile(path); return string(b) }
	// As above: the runtime writes the traces to the log file and nowhere else.
	waitFor(t, 30*time.Second, "the daemon's stack traces in a log", func() bool {
		return strings.Contains(read(log), "SIGQUIT") || strings.Contains(read(moved), "SIGQUIT")
	})
	if !strings.Contains(read(log), "SIGQUIT") {
		t.Errorf("the stack traces went to the log moved away, not to daemon.log:\n%s", read(log))
	}
}

// stdioRotateEnv makes TestStdioFollowsRotation's child do the
// redirecting, which would take the test binary's own output with it.
const stdioRotateEnv = "DIFFLORE_TEST_STDIO_ROTATION"

// TestStdioFollowsRotation points standard error at a log that then
// rotates by size: what is written to descriptor 2 afterwards, as the Go
// runtime writes a panic, must land in the current daemon.log.
func TestStdioFollowsRotation(t *testing.T) {
	if dir := os.Getenv(stdioRotateEnv); dir != "" {
		f, err := openRotatingFile(filepath.Join(dir, logFileName), 1024, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.followStdio(); err != nil {
			t.Fatal(err)
		}
		log := newLogger(f, true, 0)
		for i := range 20 { // Some 2 KiB: at least one rotation.
			log.Info("line", "n", i, "pad", strings.Repeat("x", 60))
		}
		syscall.Write(2, []byte("marker written to descriptor 2\n"))
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStdioFollowsRotation$", "-test.count=1")
	cmd.Env = append(os.Environ(), stdioRotateEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, logFileName+".1")); err != nil {
		t.Fatalf("the log did not rotate: %v", err)
	}
	cur, _ := os.ReadFile(filepath.Join(dir, logFileName))
	if !strings.Contains(string(cur), "marker") {
		old, _ := os.ReadFile(filepath.Join(dir, logFileName+".1"))
		t.Errorf("descriptor 2 did not follow the rotation: daemon.log:\n%s\ndaemon.log.1:\n%s", cur, old)
	}
}
