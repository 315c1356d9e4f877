package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/sys/windows"
)

// wakeListener waits on the wake event, an auto-reset named event: any
// number of SetEvent calls before the daemon looks count as one.
type wakeListener struct {
	ev, quit windows.Handle
}

// wakeEventName names the wake event of a data home. It is derived from
// the home's path, case folded as Windows compares paths, and lives in the
// session's namespace (Local\), where the hooks and the daemon they start
// run.
func wakeEventName(h home) string {
	sum := sha256.Sum256([]byte(strings.ToLower(h.dir)))
	return `Local\difflore-wake-` + hex.EncodeToString(sum[:8])
}

func listenWake(h home) (*wakeListener, error) {
	name, err := windows.UTF16PtrFromString(wakeEventName(h))
	if err != nil {
		return nil, err
	}
	// An event that already exists is held open by an enqueue setting it
	// this instant: the same event, and the wake-up it carries is ours.
	ev, err := windows.CreateEvent(nil, 0, 0, name)
	if err != nil && ev == 0 {
		return nil, fmt.Errorf("create wake event: %w", err)
	}
	quit, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(ev)
		return nil, fmt.Errorf("create event: %w", err)
	}
	return &wakeListener{ev: ev, quit: quit}, nil
}

func (w *wakeListener) wait() bool {
	r, err := windows.WaitForMultipleObjects([]windows.Handle{w.ev, w.quit}, false, windows.INFINITE)
	return err == nil && r == windows.WAIT_OBJECT_0
}

func (w *wakeListener) interrupt() { windows.SetEvent(w.quit) }

func (w *wakeListener) release() {
	windows.CloseHandle(w.ev)
	windows.CloseHandle(w.quit)
}

func wakeDaemon(h home) {
	name, err := windows.UTF16PtrFromString(wakeEventName(h))
	if err != nil {
		return
	}
	// No event: no daemon listens, and there is no one to wake.
	ev, err := windows.OpenEvent(windows.EVENT_MODIFY_STATE, false, name)
	if err != nil {
		return
	}
	windows.SetEvent(ev)
	windows.CloseHandle(ev)
}
