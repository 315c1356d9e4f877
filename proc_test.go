package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// These tests drive the OS primitives of whichever system runs them: the
// pidfd on Linux, kqueue on the BSDs and macOS, process handles and the stop
// event on Windows (run them there under Wine with ../shared/tools/wine-go-test).

// TestProcWait checks that wait times out on a live process, reports a
// negative timeout as no wait at all, and returns as soon as the process
// exits.
func TestProcWait(t *testing.T) {
	t.Parallel()
	s := startSleeper(t)
	p, err := openProc(s.pid())
	if err != nil {
		t.Fatalf("openProc(%d): %v", s.pid(), err)
	}
	defer p.close()

	start := time.Now()
	exited, err := p.wait(300 * time.Millisecond)
	if errors.Is(err, errNoExitWatch) {
		t.Skip("no exit notification on this system; waitExit waits on the lock instead")
	}
	if err != nil {
		t.Fatalf("wait on a live process: %v", err)
	}
	if exited {
		t.Fatal("wait reported a live process as exited")
	}
	// Windows timers tick every 15.6 ms, so allow for one tick early.
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("wait(300ms) returned after %s: it did not wait", d)
	}

	// A negative timeout does not wait: were it taken as a long one, the
	// wait below would not return before the test's own timeout.
	if exited, err := p.wait(-time.Second); err != nil || exited {
		t.Fatalf("wait(-1s) on a live process = %v, %v; want false, nil", exited, err)
	}

	// Exited, not timed out, is what says that the exit ended the wait:
	// a wait that missed it would report false after its full timeout.
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	exited, err = p.wait(time.Minute)
	if err != nil || !exited {
		t.Fatalf("wait after the process was killed = %v, %v; want true, nil", exited, err)
	}
}

// TestProcKill checks that kill ends the process through the handle and that
// a process that is gone cannot be opened.
func TestProcKill(t *testing.T) {
	t.Parallel()
	s := startSleeper(t)
	p, err := openProc(s.pid())
	if err != nil {
		t.Fatalf("openProc(%d): %v", s.pid(), err)
	}
	defer p.close()
	if err := p.kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("process still running 20s after kill")
	}
	if s.cmd.ProcessState.Success() {
		t.Errorf("killed process exited successfully (%v); want a failure exit", s.cmd.ProcessState)
	}
	if exited, err := p.wait(10 * time.Second); !errors.Is(err, errNoExitWatch) && (err != nil || !exited) {
		t.Errorf("wait on a killed process = %v, %v; want true, nil", exited, err)
	}

	// The sleeper has been waited for, so its PID names no process now
	// (unless the OS reused it at once, which no supported OS does).
	if q, err := openProc(s.pid()); !errors.Is(err, errNotRunning) {
		if q != nil {
			q.close()
		}
		t.Errorf("openProc of an exited pid: err = %v, want errNotRunning", err)
	}
}

// TestProcRequestStopSleeper sends a stop request to a process that is not a
// daemon. On Unix the request is SIGTERM, whose default action ends it. On
// Windows it is the daemon's stop event, which a process that never listened
// does not have: the request fails and leaves the process alone.
func TestProcRequestStopSleeper(t *testing.T) {
	t.Parallel()
	s := startSleeper(t)
	p, err := openProc(s.pid())
	if err != nil {
		t.Fatalf("openProc(%d): %v", s.pid(), err)
	}
	defer p.close()
	err = p.requestStop()
	if runtime.GOOS == "windows" {
		if err == nil {
			t.Fatal("requestStop to a process without a stop event succeeded")
		}
		select {
		case <-s.exited:
			t.Fatal("a failed stop request ended the process")
		case <-time.After(300 * time.Millisecond):
		}
		return
	}
	if err != nil {
		t.Fatalf("requestStop: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("process still running 20s after the stop request")
	}
}

// TestProcRequestStopDaemon checks that the stop request reaches a running
// daemon and that it stops gracefully: exit code 0, PID file removed, lock
// released.
func TestProcRequestStopDaemon(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	d := e.startDaemon()
	h, err := openHome(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	info, err := readPIDFile(h.path(pidFileName))
	if err != nil {
		t.Fatalf("read pid file of a running daemon: %v", err)
	}
	if info.PID != d.cmd.Process.Pid {
		t.Fatalf("pid file names pid %d, the daemon is pid %d", info.PID, d.cmd.Process.Pid)
	}
	p, err := openProc(info.PID)
	if err != nil {
		t.Fatalf("openProc(%d): %v", info.PID, err)
	}
	defer p.close()
	if err := p.requestStop(); err != nil {
		t.Fatalf("requestStop: %v", err)
	}
	if exited, err := waitExit(t.Context(), h, p, 20*time.Second); err != nil || !exited {
		t.Fatalf("daemon did not exit within 20s of the stop request (%v)\n%s", err, d.log)
	}
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Fatalf("daemon exit: %v, want exit code 0\n%s", err, d.log)
	}
	if _, err := os.Stat(h.path(pidFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after a graceful stop: %v, want it removed", err)
	}
	if held, err := lockHeld(h); err != nil || held {
		t.Errorf("lock after a graceful stop: held=%v err=%v, want released", held, err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockFileName)); err != nil {
		t.Errorf("lock file: %v; it must never be deleted", err)
	}
}

// redirectChildEnv makes TestRedirectStdio's child of the test binary, which
// redirects its output to the file the variable names.
const redirectChildEnv = "DIFFLORE_TEST_REDIRECT_STDIO"

// TestRedirectStdio checks what the detached daemon relies on after it
// reports ready: redirectStdio closes the pipe to the process that started
// it, so that process sees the end of its output while the daemon runs, and
// everything written to standard output and error afterwards, even after
// the log file itself is closed (as main prints the daemon's last error),
// lands in the log.
func TestRedirectStdio(t *testing.T) {
	if path := os.Getenv(redirectChildEnv); path != "" {
		fmt.Println("before")
		f, err := openShared(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		if err := redirectStdio(f); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		// What the daemon writes through once redirected: the descriptors
		// on Unix, the standard handles on Windows (where os.Stdout and
		// os.Stderr stay as they were: currentStderr).
		fmt.Fprintln(stdoutNow(), "to stdout")
		fmt.Fprintln(currentStderr(), "to stderr")
		f.Close()
		fmt.Fprintln(currentStderr(), "after close")
		io.Copy(io.Discard, os.Stdin) // Until the parent has checked the pipe.
		os.Exit(0)
	}

	logPath := filepath.Join(t.TempDir(), "daemon.log")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestRedirectStdio$")
	cmd.Env = append(os.Environ(), redirectChildEnv+"="+logPath)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-exited
	})

	piped := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(pr); piped <- b }()
	select {
	case out := <-piped:
		if string(out) != "before\n" {
			t.Errorf("the pipe got %q, want only %q", out, "before\n")
		}
	case <-exited:
		t.Fatalf("child exited (%v) before its pipe was closed", waitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("the pipe is still open 30s after the child started: redirectStdio did not close it")
	}
	stdin.Close()
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("child: %v", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child still running 30s after its stdin was closed")
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := "to stdout\nto stderr\nafter close\n"; string(data) != want {
		t.Errorf("log holds %q, want %q", data, want)
	}
}
