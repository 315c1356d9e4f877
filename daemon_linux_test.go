package main

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSighupStopsTerminalDaemon runs a foreground daemon whose standard
// input is a terminal (a pseudo-terminal the test opens): SIGHUP means the
// terminal went away, and the daemon stops gracefully on it rather than
// reloading.
func TestSighupStopsTerminalDaemon(t *testing.T) {
	testHome(t)
	pty, tty := openPTY(t)
	defer pty.Close()
	defer tty.Close()
	cmd := command(t, "run")
	cmd.Stdin = tty
	cmd, l := startLoggedCmd(t, cmd)
	l.waitFor(t, "daemon ready")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, "daemon stopped")
	l.waitExit(t)
	if !cmd.ProcessState.Success() {
		t.Errorf("exit %v after SIGHUP, want 0\n%s", cmd.ProcessState, l)
	}
}

// openPTY opens a pseudo-terminal pair: the controlling side and the
// terminal a child gets.
func openPTY(t *testing.T) (pty, tty *os.File) {
	t.Helper()
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(pty.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		pty.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(pty.Fd()), unix.TIOCGPTN)
	if err != nil {
		pty.Close()
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		pty.Close()
		t.Fatalf("open tty: %v", err)
	}
	return pty, tty
}
