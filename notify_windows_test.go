package main

import (
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// TestWakeDaemonReachesService checks the wake-up of a daemon that runs as
// a service, in session 0, whose Local\ event the hooks' sessions never
// see: with no Local\ event to set, enqueue's wakeDaemon sets the global
// one, and the listener of a process allowed to make it wakes on it.
func TestWakeDaemonReachesService(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	gev := createGlobalWakeEvent(h)
	if gev == 0 {
		t.Skip("this process may not create global objects (not a service, not an administrator)")
	}
	defer windows.CloseHandle(gev)
	wakeDaemon(h)
	if r, err := windows.WaitForSingleObject(gev, 0); err != nil || r != windows.WAIT_OBJECT_0 {
		t.Fatalf("global wake event not set by wakeDaemon with no Local event: %#x, %v", r, err)
	}

	// The listener waits on the global event too.
	w, err := listenWake(h)
	if err != nil {
		t.Fatal(err)
	}
	defer w.release()
	if len(w.evs) != 2 {
		t.Fatalf("listener has %d wake events, want the Local and the Global one", len(w.evs))
	}
	if err := windows.SetEvent(gev); err != nil {
		t.Fatal(err)
	}
	woke := make(chan bool, 1)
	go func() {
		ok, err := w.wait(time.Hour)
		woke <- ok && err == nil
	}()
	select {
	case ok := <-woke:
		if !ok {
			t.Fatal("wait said no wake-up for a global one")
		}
	case <-time.After(5 * time.Second):
		w.poke()
		t.Fatal("no wake-up from the global event after 5s")
	}
}
