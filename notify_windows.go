package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// wakeListener waits on the wake events, auto-reset named events: any
// number of SetEvent calls before the daemon looks count as one.
type wakeListener struct {
	evs []windows.Handle // the session's wake event, and the global one when it could be made
}

// wakeEventName names the wake event of a data home in a namespace: Local\
// (the session's, where the hooks and the daemon they start run) or
// Global\ (seen from every session). The name is derived from the home's
// path, case folded as Windows compares paths.
func wakeEventName(h home, namespace string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(h.dir)))
	return namespace + `\difflore-wake-` + hex.EncodeToString(sum[:8])
}

// globalWakeSDDL lets any signed-in user set the global wake event, and
// no one else do more than the system: the hooks of the home's owner run
// in their own session, and a wake-up carries nothing but a reason to
// look at the outbox, which the safety net gives anyway.
const globalWakeSDDL = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x100002;;;AU)"

func listenWake(h home) (*wakeListener, error) {
	name, err := windows.UTF16PtrFromString(wakeEventName(h, "Local"))
	if err != nil {
		return nil, err
	}
	// An event that already exists is held open by an enqueue setting it
	// this instant: the same event, and the wake-up it carries is ours.
	ev, err := windows.CreateEvent(nil, 0, 0, name)
	if err != nil && ev == 0 {
		return nil, fmt.Errorf("create wake event: %w", err)
	}
	w := &wakeListener{evs: []windows.Handle{ev}}
	// A service runs in session 0, where the hooks' Local\ events never
	// reach: it listens in Global\ too, which only a process with the
	// right to create global objects (services, administrators) can do.
	// Others are refused, and rely on their Local\ event alone.
	if gev := createGlobalWakeEvent(h); gev != 0 {
		w.evs = append(w.evs, gev)
	}
	return w, nil
}

// createGlobalWakeEvent makes the data home's Global\ wake event, or
// returns 0 when this process may not.
func createGlobalWakeEvent(h home) windows.Handle {
	name, err := windows.UTF16PtrFromString(wakeEventName(h, "Global"))
	if err != nil {
		return 0
	}
	sd, err := windows.SecurityDescriptorFromString(globalWakeSDDL)
	if err != nil {
		return 0
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	ev, _ := windows.CreateEvent(sa, 0, 0, name)
	return ev
}

func (w *wakeListener) wait(timeout time.Duration) (bool, error) {
	// Whole milliseconds, rounded up, short of INFINITE.
	ms := uint32(min((max(timeout, 0)+time.Millisecond-1)/time.Millisecond, windows.INFINITE-1))
	r, err := windows.WaitForMultipleObjects(w.evs, false, ms)
	switch {
	case err != nil:
		return false, fmt.Errorf("wait for wake-ups: %w", err)
	case r == uint32(windows.WAIT_TIMEOUT):
		return false, nil
	case r < windows.WAIT_OBJECT_0+uint32(len(w.evs)):
		return true, nil
	}
	return false, fmt.Errorf("wait for wake-ups: %#x", r)
}

func (w *wakeListener) poke() { windows.SetEvent(w.evs[0]) }

func (w *wakeListener) release() {
	for _, ev := range w.evs {
		windows.CloseHandle(ev)
	}
}

// wakeDaemon sets the session's wake event, or the global one of a daemon
// that runs as a service when the session has none.
func wakeDaemon(h home) {
	for _, namespace := range []string{"Local", "Global"} {
		name, err := windows.UTF16PtrFromString(wakeEventName(h, namespace))
		if err != nil {
			return
		}
		// No event: no daemon listens there.
		ev, err := windows.OpenEvent(windows.EVENT_MODIFY_STATE, false, name)
		if err != nil {
			continue
		}
		windows.SetEvent(ev)
		windows.CloseHandle(ev)
		return
	}
}

// renewal is nil: named events cannot be removed under the daemon.
func (w *wakeListener) renewal() error { return nil }

// wakePipeProblem is "": Windows has no wake pipe (named events instead).
func wakePipeProblem(home) string { return "" }
