package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	return &proc{pid: pid, h: h}, nil
}

// stopEventName names the event a daemon waits on for a stop request. It is
// derived from the data home, so each home's daemon has its own. Windows has
// no SIGTERM: os.Process.Signal can only kill, and GenerateConsoleCtrlEvent
// cannot reach a detached process that has no console.
func stopEventName(h home) string {
	sum := sha256.Sum256([]byte(strings.ToLower(filepath.Clean(h.dir))))
	return `Local\difflore-stop-` + hex.EncodeToString(sum[:8])
}

// requestStop sets the daemon's stop event.
func (p *proc) requestStop(h home) error {
	name, err := windows.UTF16PtrFromString(stopEventName(h))
	if err != nil {
		return err
	}
	ev, err := windows.OpenEvent(windows.EVENT_MODIFY_STATE, false, name)
	if err != nil {
		return fmt.Errorf("open stop event: %w", err)
	}
	defer windows.CloseHandle(ev)
	return windows.SetEvent(ev)
}

// wait blocks until the process exits or timeout passes.
func (p *proc) wait(timeout time.Duration) (bool, error) {
	ms := uint32(min(timeout.Milliseconds(), int64(windows.INFINITE-1)))
	r, err := windows.WaitForSingleObject(p.h, max(ms, 0))
	switch r {
	case windows.WAIT_OBJECT_0:
		return true, nil
	case uint32(windows.WAIT_TIMEOUT):
		return false, nil
	}
	return false, fmt.Errorf("wait for process: %w", err)
}

// kill ends the process at once.
func (p *proc) kill() error { return windows.TerminateProcess(p.h, 1) }

func (p *proc) close() { windows.CloseHandle(p.h) }

// stopContext is cancelled by Ctrl-C or by the home's stop event, which
// 'difflore stop' sets.
func stopContext(ctx context.Context, h home) (context.Context, context.CancelFunc, error) {
	name, err := windows.UTF16PtrFromString(stopEventName(h))
	if err != nil {
		return nil, nil, err
	}
	ev, err := windows.CreateEvent(nil, 1, 0, name)
	if err != nil && !errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		return nil, nil, fmt.Errorf("create stop event: %w", err)
	}
	// An event left set by an earlier stop request must not stop us.
	windows.ResetEvent(ev)
	quit, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(ev)
		return nil, nil, fmt.Errorf("create event: %w", err)
	}
	ctx, cancelSignals := signal.NotifyContext(ctx, os.Interrupt)
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

// detachAttrs starts the daemon without a console and in a process group of
// its own, so closing the starting console does not end it.
func detachAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		CreationFlags: windows.CREATE_NEW_PROCESS_GROUP | windows.DETACHED_PROCESS,
		HideWindow:    true,
	}
}

// redirectStdio points the standard handles at f, so that the detached
// daemon stops writing to the pipe of the process that started it.
func redirectStdio(f *os.File) error {
	for _, std := range []uint32{windows.STD_OUTPUT_HANDLE, windows.STD_ERROR_HANDLE} {
		if err := windows.SetStdHandle(std, windows.Handle(f.Fd())); err != nil {
			return err
		}
	}
	return nil
}

// checkOwner is a no-op on Windows, where the profile folder's ACL already
// keeps other users out.
func checkOwner(fs.FileInfo) error { return nil }
