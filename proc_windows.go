package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
)

// proc is an open process handle: the exit wait and the hard kill go through
// the handle of the process that was verified, whatever happens to its PID.
type proc struct {
	pid int
	h   windows.Handle
}

func openProc(pid int) (*proc, error) {
	const access = windows.SYNCHRONIZE | windows.PROCESS_TERMINATE | windows.PROCESS_QUERY_LIMITED_INFORMATION
	h, err := windows.OpenProcess(access, false, uint32(pid))
	if err != nil {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			return nil, fmt.Errorf("pid %d: %w", pid, errNotRunning)
		}
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	// A process that has exited keeps its PID, and can be opened, for as
	// long as anyone holds a handle to it; it is not running all the same.
	if r, _ := windows.WaitForSingleObject(h, 0); r == windows.WAIT_OBJECT_0 {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("pid %d has exited: %w", pid, errNotRunning)
	}
	return &proc{pid: pid, h: h}, nil
}

// stopEventName names the event a daemon waits on for a stop request.
// Windows has no SIGTERM: os.Process.Signal can only kill, and
// GenerateConsoleCtrlEvent cannot reach a detached process that has no
// console. The name is derived from the daemon's PID, which 'stop' has read
// from the PID file and verified: like a signal, the request reaches the
// process that was checked, and no two spellings of one data home (8.3 short
// names, a junction, a mapped drive) can name two different events.
func stopEventName(pid int) string {
	return `Local\difflore-stop-` + strconv.Itoa(pid)
}

// requestStop sets the daemon's stop event. The daemon creates the event
// before it writes its PID file, so a daemon that 'stop' can find is one
// that listens.
func (p *proc) requestStop() error {
	name, err := windows.UTF16PtrFromString(stopEventName(p.pid))
	if err != nil {
		return err
	}
	ev, err := windows.OpenEvent(windows.EVENT_MODIFY_STATE, false, name)
	if err != nil {
		return fmt.Errorf("open stop event %s: %w", stopEventName(p.pid), err)
	}
	defer windows.CloseHandle(ev)
	if err := windows.SetEvent(ev); err != nil {
		return fmt.Errorf("set stop event: %w", err)
	}
	return nil
}

// wait blocks until the process exits or timeout passes. A negative timeout
// checks without waiting.
func (p *proc) wait(timeout time.Duration) (bool, error) {
	ms := uint32(min(max(timeout.Milliseconds(), 0), int64(windows.INFINITE-1)))
	r, err := windows.WaitForSingleObject(p.h, ms)
	switch r {
	case windows.WAIT_OBJECT_0:
		return true, nil
	case uint32(windows.WAIT_TIMEOUT):
		return false, nil
	}
	return false, fmt.Errorf("wait for process %d: %w", p.pid, err)
}

// kill ends the process at once, through the handle that was verified.
func (p *proc) kill() error {
	if err := windows.TerminateProcess(p.h, 1); err != nil {
		return fmt.Errorf("terminate process %d: %w", p.pid, err)
	}
	return nil
}

func (p *proc) close() { windows.CloseHandle(p.h) }

// hangups delivers nothing: Windows has no SIGHUP. A service is restarted
// to read config.toml again.
func hangups() (<-chan os.Signal, func()) { return nil, func() {} }

// stopContext is cancelled by the stop event, which 'difflore stop' sets, by
// Ctrl-C or Ctrl-Break (os.Interrupt), and by the console closing, the user
// logging off or the system shutting down (which Go reports as SIGTERM).
func stopContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	name, err := windows.UTF16PtrFromString(stopEventName(os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	ev, err := windows.CreateEvent(nil, 1, 0, name)
	if err != nil && !errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		return nil, nil, fmt.Errorf("create stop event: %w", err)
	}
	// An event that already exists was made for an earlier process with
	// this PID and is still held open by someone; a request left set in it
	// was not meant for us.
	windows.ResetEvent(ev)
	quit, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(ev)
		return nil, nil, fmt.Errorf("create event: %w", err)
	}
	ctx, cancelSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, _ := windows.WaitForMultipleObjects([]windows.Handle{ev, quit}, false, windows.INFINITE)
		if r == windows.WAIT_OBJECT_0 {
			cancel()
		}
	}()
	return ctx, func() {
		windows.SetEvent(quit)
		<-done
		windows.CloseHandle(quit)
		windows.CloseHandle(ev)
		cancel()
		cancelSignals()
	}, nil
}

// startDetachedProcess starts cmd (or, on a retry, a copy of it, which it
// returns) without a console and in a process group
// of its own, so that closing the starting console does not end it. It first
// asks to leave the starter's job object too: a terminal, an SSH session or
// a CI runner may kill its whole job when it closes. A job that forbids
// breaking away fails that start, and the daemon then starts inside it.
func startDetachedProcess(cmd *exec.Cmd) (*exec.Cmd, error) {
	const flags = windows.CREATE_NEW_PROCESS_GROUP | windows.DETACHED_PROCESS
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: flags | windows.CREATE_BREAKAWAY_FROM_JOB, HideWindow: true}
	err := cmd.Start()
	if err == nil || !errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return cmd, err
	}
	retry := exec.Command(cmd.Path, cmd.Args[1:]...)
	retry.Env, retry.Dir, retry.Stdin, retry.Stdout, retry.Stderr = cmd.Env, cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr
	retry.SysProcAttr = &syscall.SysProcAttr{CreationFlags: flags, HideWindow: true}
	return retry, retry.Start()
}

// redirectStdio does for the detached daemon what dup2 does on Unix: the
// standard output and error handles, where the Go runtime writes a panic,
// become duplicates of f's handle (so that they outlive f when the log
// rotates or is closed), and what they were is closed: the pipe to the
// process that started the daemon, through os.Stdout and os.Stderr, which
// own it, or the duplicates of an earlier call. os.Stdout and os.Stderr
// themselves are not replaced: other goroutines read them without a lock,
// and main prints through currentStderr.
func redirectStdio(f *os.File) error {
	self := windows.CurrentProcess()
	dup := func() (windows.Handle, error) {
		var h windows.Handle
		err := windows.DuplicateHandle(self, windows.Handle(f.Fd()), self, &h, 0, false, windows.DUPLICATE_SAME_ACCESS)
		if err != nil {
			return 0, fmt.Errorf("duplicate log handle: %w", err)
		}
		return h, nil
	}
	out, err := dup()
	if err != nil {
		return err
	}
	errh, err := dup()
	if err != nil {
		windows.CloseHandle(out)
		return err
	}
	prevOut, _ := windows.GetStdHandle(windows.STD_OUTPUT_HANDLE)
	prevErr, _ := windows.GetStdHandle(windows.STD_ERROR_HANDLE)
	if err := windows.SetStdHandle(windows.STD_OUTPUT_HANDLE, out); err != nil {
		windows.CloseHandle(out)
		windows.CloseHandle(errh)
		return fmt.Errorf("set standard output: %w", err)
	}
	if err := windows.SetStdHandle(windows.STD_ERROR_HANDLE, errh); err != nil {
		windows.CloseHandle(errh)
		return fmt.Errorf("set standard error: %w", err)
	}
	// Each old handle is closed once: closing a handle value twice could
	// close whatever handle was given that value in between.
	closeStdHandle(prevOut)
	if prevErr != prevOut {
		closeStdHandle(prevErr)
	}
	return nil
}

// closeStdHandle closes a standard handle that redirectStdio replaced:
// through os.Stdout or os.Stderr when one of them owns it, so that it
// knows, and never closes it again.
func closeStdHandle(h windows.Handle) {
	switch h {
	case 0, windows.InvalidHandle:
	case windows.Handle(os.Stdout.Fd()):
		os.Stdout.Close()
	case windows.Handle(os.Stderr.Fd()):
		os.Stderr.Close()
	default:
		windows.CloseHandle(h)
	}
}

// stdErr writes to the standard error handle as it is at each write.
type stdErr struct{}

func (stdErr) Write(p []byte) (int, error) {
	h, err := windows.GetStdHandle(windows.STD_ERROR_HANDLE)
	if err != nil {
		return 0, err
	}
	if h == windows.Handle(os.Stderr.Fd()) {
		return os.Stderr.Write(p) // A console: os.Stderr writes UTF-16 to it.
	}
	var n uint32
	err = windows.WriteFile(h, p, &n, nil)
	return int(n), err
}

func currentStderr() io.Writer { return stdErr{} }
