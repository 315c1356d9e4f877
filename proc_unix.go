//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// stopContext is cancelled when the daemon is asked to stop: SIGTERM (what
// 'difflore stop', systemd and launchd send) or SIGINT (Ctrl-C).
func stopContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	ctx, cancel := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	return ctx, cancel, nil
}

// hangups delivers SIGHUP. Under nohup, which starts the daemon with SIGHUP
// ignored, it delivers nothing, and the signal stays ignored.
func hangups() (<-chan os.Signal, func()) {
	if signal.Ignored(syscall.SIGHUP) {
		return nil, func() {}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// requestStop asks the daemon to stop gracefully.
func (p *proc) requestStop() error { return p.signal(unix.SIGTERM) }

// kill ends the process at once.
func (p *proc) kill() error { return p.signal(unix.SIGKILL) }

// startDetachedProcess starts cmd in a session of its own, so that the
// daemon outlives the terminal and the shell that started it.
func startDetachedProcess(cmd *exec.Cmd) (*exec.Cmd, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, cmd.Start()
}

// redirectStdio points standard output and error at f, so that the detached
// daemon stops writing to the pipe of the process that started it.
func redirectStdio(f *os.File) error {
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("dup2: %w", err)
		}
	}
	return nil
}

func currentStderr() io.Writer { return os.Stderr }
