package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// These tests run the Windows code paths as a Windows program: natively on
// Windows, or on Linux under Wine with ../shared/tools/wine-go-test.

// daemonPID reads the PID that the PID file of the test's home names.
func daemonPID(t *testing.T, dir string) int {
	t.Helper()
	info, err := readPIDFile(home{dir: dir}.path(pidFileName))
	if err != nil {
		t.Fatalf("read pid file: %v", err)
	}
	return info.PID
}

// openStopEvent opens the stop event of the daemon with this PID.
func openStopEvent(pid int) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(stopEventName(pid))
	if err != nil {
		return 0, err
	}
	return windows.OpenEvent(windows.EVENT_MODIFY_STATE, false, name)
}

// TestWindowsStopEventStopsDaemon sets the daemon's named stop event by hand,
// as 'difflore stop' does, and checks that the daemon stops gracefully and
// that its event goes with it.
func TestWindowsStopEventStopsDaemon(t *testing.T) {
	dir := testHome(t)
	d := startDaemon(t)
	pid := daemonPID(t, dir)

	ev, err := openStopEvent(pid)
	if err != nil {
		t.Fatalf("open stop event %s of a running daemon: %v", stopEventName(pid), err)
	}
	err = windows.SetEvent(ev)
	windows.CloseHandle(ev)
	if err != nil {
		t.Fatalf("set stop event: %v", err)
	}
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Fatalf("daemon exit after the stop event: %v, want exit code 0\n%s", err, d.log)
	}
	if !strings.Contains(d.log.String(), "daemon stopped") {
		t.Errorf("daemon did not log its graceful stop:\n%s", d.log)
	}
	h := home{dir: dir}
	if _, err := os.Stat(h.path(pidFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after a graceful stop: %v, want it removed", err)
	}
	if held, err := lockHeld(h); err != nil || held {
		t.Errorf("lock after a graceful stop: held=%v err=%v, want released", held, err)
	}
	// The event lived in the daemon's handle table only: no one can stop a
	// daemon that has gone, or a later process given the same PID.
	if ev, err := openStopEvent(pid); err == nil {
		windows.CloseHandle(ev)
		t.Errorf("stop event %s still exists after the daemon exited", stopEventName(pid))
	}
}

// TestWindowsKillThroughHandle checks that the hard kill ends the daemon
// through the process handle, with exit code 1 and no graceful cleanup, and
// that the lock dies with the process.
func TestWindowsKillThroughHandle(t *testing.T) {
	dir := testHome(t)
	d := startDaemon(t)
	p, err := openProc(daemonPID(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if err := p.kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if exited, err := p.wait(20 * time.Second); err != nil || !exited {
		t.Fatalf("wait after kill = %v, %v; want true, nil", exited, err)
	}
	var ee *exec.ExitError
	if err := d.wait(t, 20*time.Second); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("killed daemon's exit: %v, want exit code 1 (TerminateProcess)", err)
	}
	h := home{dir: dir}
	if _, err := os.Stat(h.path(pidFileName)); err != nil {
		t.Errorf("a killed daemon cannot remove its pid file, yet: %v", err)
	}
	if held, err := lockHeld(h); err != nil || held {
		t.Errorf("lock after the daemon was killed: held=%v err=%v, want released", held, err)
	}
	out := mustCLI(t, "stop")
	if want := fmt.Sprintf("removed stale pid file (pid %d)\n", d.cmd.Process.Pid); out != want {
		t.Errorf("stop after a kill printed %q, want %q", out, want)
	}
}

// TestWindowsSecondRunRefused checks that the lock refuses a second daemon
// with the first one's PID, while the PID file stays readable: the lock is
// on daemon.pid.lock, and a locked byte range on Windows could not be read.
func TestWindowsSecondRunRefused(t *testing.T) {
	dir := testHome(t)
	d := startDaemon(t)
	pid := d.cmd.Process.Pid

	data, err := os.ReadFile(home{dir: dir}.path(pidFileName))
	if err != nil {
		t.Fatalf("read pid file while the daemon holds the lock: %v", err)
	}
	if line, _, _ := strings.Cut(string(data), "\n"); line != strconv.Itoa(pid) {
		t.Fatalf("pid file line 1 is %q, want %d", line, pid)
	}

	second := command(t, "run")
	var stderr strings.Builder
	second.Stderr = &stderr
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		second.Process.Kill()
		<-done
		t.Fatalf("second run still running after a minute; want it refused\nstderr: %s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second run: %v, want exit code 1\nstderr: %s", err, stderr.String())
	}
	if want := fmt.Sprintf("difflore: already running (pid %d)\nhint: 'difflore stop' stops it; 'difflore run --takeover' replaces it\n", pid); stderr.String() != want {
		t.Errorf("second run said %q, want %q", stderr.String(), want)
	}
	if !d.alive() {
		t.Fatalf("the first daemon died when the second was refused\n%s", d.log)
	}

	out, errOut, code := cli(t, "", "status")
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("running (pid %d, up ", pid)) {
		t.Errorf("status: exit %d\n%s%s\nwant exit 0 and running (pid %d, …)", code, out, errOut, pid)
	}

	if out := mustCLI(t, "stop"); out != fmt.Sprintf("stopped (pid %d)\n", pid) {
		t.Errorf("stop printed %q, want stopped (pid %d)", out, pid)
	}
	if err := d.wait(t, 20*time.Second); err != nil {
		t.Errorf("daemon exit after stop: %v, want exit code 0\n%s", err, d.log)
	}
}

// TestWindowsDetachThenStop starts the daemon with 'run --detach' (a
// detached process in a new process group, ready reported through a pipe)
// and stops it with 'stop'.
func TestWindowsDetachThenStop(t *testing.T) {
	dir := testHome(t)
	out := mustCLI(t, "run", "--detach")
	m := regexp.MustCompile(`^started \(pid ([0-9]+)\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run --detach printed %q, want started (pid N)", out)
	}
	pid, _ := strconv.Atoi(m[1])
	p, err := openProc(pid)
	if err != nil {
		t.Fatalf("open the detached daemon: %v", err)
	}
	defer p.close()
	t.Cleanup(func() {
		// A failed test must not leave a detached daemon behind.
		if exited, _ := p.wait(0); !exited {
			p.kill()
			p.wait(10 * time.Second)
		}
	})
	if got := daemonPID(t, dir); got != pid {
		t.Fatalf("pid file names pid %d, run --detach printed %d", got, pid)
	}
	if out, errOut, code := cli(t, "", "status"); code != 0 || !strings.HasPrefix(out, fmt.Sprintf("running (pid %d, ", pid)) {
		t.Fatalf("status of the detached daemon: exit %d\n%s%s", code, out, errOut)
	}

	if out := mustCLI(t, "stop"); out != fmt.Sprintf("stopped (pid %d)\n", pid) {
		t.Fatalf("stop printed %q, want stopped (pid %d)", out, pid)
	}
	if exited, err := p.wait(0); err != nil || !exited {
		t.Fatalf("stop returned but the daemon runs (%v)", err)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(p.h, &code); err != nil || code != 0 {
		t.Errorf("detached daemon's exit code: %d (%v), want 0", code, err)
	}
	logData, err := os.ReadFile(home{dir: dir}.path(logFileName))
	if err != nil {
		t.Fatalf("read daemon.log: %v", err)
	}
	for _, want := range []string{`"msg":"daemon ready"`, `"msg":"daemon stopped"`} {
		if !strings.Contains(string(logData), want) {
			t.Errorf("daemon.log lacks %s:\n%s", want, logData)
		}
	}
	if out, _, code := cli(t, "", "status", "--json"); code != 3 || !strings.Contains(out, `"state": "not_running"`) {
		t.Errorf("status after stop: exit %d, want 3\n%s", code, out)
	}
}
