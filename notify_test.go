package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWakeListener checks the seam on its own: a wait with no wake-up
// runs out its time and says so, a wake-up from another connection to the
// same home (as enqueue sends it) ends a wait that has an hour left, and so
// does a poke from another goroutine (the daemon's stop).
func TestWakeListener(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	h := mustOpenHomeCreate(t, e.home)
	wakeDaemon(h) // No one listens yet: nothing happens, nothing fails.
	w, err := listenWake(h)
	if err != nil {
		t.Fatal(err)
	}
	defer w.release()
	if woke, err := w.wait(50 * time.Millisecond); woke || err != nil {
		t.Fatalf("wait with no wake-up = %v, %v; want false, nil", woke, err)
	}
	for _, send := range []struct {
		name string
		fn   func()
	}{{"wakeDaemon", func() { wakeDaemon(h) }}, {"poke", func() { go w.poke() }}} {
		woken := make(chan error, 1)
		go func() {
			woke, err := w.wait(time.Hour)
			if err == nil && !woke {
				err = fmt.Errorf("wait = false, want a wake-up")
			}
			woken <- err
		}()
		send.fn()
		select {
		case err := <-woken:
			if err != nil {
				t.Fatalf("%s: %v", send.name, err)
			}
		case <-time.After(5 * time.Second):
			w.poke()
			t.Fatalf("%s: no wake-up after 5s", send.name)
		}
	}
}

// TestWakeWithoutPolling runs a daemon whose safety-net poll is an hour
// away, so that only a wake-up can bring it an event in time, then enqueues
// from a separate process, as a hook does: the event must reach the
// endpoint within a second.
func TestWakeWithoutPolling(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.inProcessDaemon("--endpoint", ep.URL, "--tick", "1h")
	for i := range 3 {
		id := fmt.Sprintf("woken-%d", i)
		if out, err := e.command("enqueue", "--id", id, `{"hook":"PostToolUse"}`).CombinedOutput(); err != nil {
			t.Fatalf("enqueue: %v\n%s", err, out)
		}
		arr.await(t, id, time.Second)
	}
}

// TestSafetyNetFindsUnannouncedEvents queues events the way an older
// enqueue does, with no wake-up, into the outbox of an idle daemon whose
// safety net is short: each pass of the net finds them.
func TestSafetyNetFindsUnannouncedEvents(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	e.inProcessDaemon("--endpoint", ep.URL, "--tick", "200ms")
	for i := range 3 {
		id := fmt.Sprintf("unannounced-%d", i)
		if err := enqueueDB(filepath.Join(dir, dbFileName), time.Second, id, "hook", []byte(`{"old":true}`), time.Now()); err != nil {
			t.Fatal(err)
		}
		arr.await(t, id, 10*time.Second)
	}
}

// TestWakeBurstCoalesces enqueues 1 000 events while the daemon is busy
// with a request (the endpoint holds its first request until the burst is
// over): the 1 000 wake-ups sent meanwhile must cost a few drain passes,
// counted in the daemon's debug log, not one pass each.
func TestWakeBurstCoalesces(t *testing.T) {
	// Not in parallel: the burst must end while the first request is
	// held, which other tests' load made it miss under Wine (596 passes).
	e := newTestEnv(t)
	const burst = 1000
	arr := newArrivals()
	release := make(chan struct{})
	var once sync.Once
	ep := newEndpoint(t, func(n int, r recorded) answer {
		if n == 0 {
			<-release
		}
		return arr.script(200)(n, r)
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	logs := e.inProcessDaemon("--endpoint", ep.URL, "--tick", "1h", "--batch", "10000", "--log-level", "debug")
	before := strings.Count(logs.String(), "drain pass")
	for i := range burst {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("b%04d", i), `{"burst":true}`)
	}
	once.Do(func() { close(release) })
	for i := range burst {
		arr.await(t, fmt.Sprintf("b%04d", i), 30*time.Second)
	}
	// The wake-ups the burst sent may still cause passes after its events
	// are delivered: count once the count holds still for 250 ms. Nothing
	// signals that the daemon has gone idle; a slow machine can only make
	// the count lower, never fail the test wrongly.
	passes := 0
	for deadline, stable := time.Now().Add(10*time.Second), 0; stable < 5 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n := strings.Count(logs.String(), "drain pass") - before
		if n == passes {
			stable++
		} else {
			passes, stable = n, 0
		}
	}
	t.Logf("%d drain passes for %d enqueues, %d requests", passes, burst, len(ep.requests()))
	if passes > 40 {
		t.Errorf("%d drain passes for a burst of %d enqueues, want a few dozen at most", passes, burst)
	}
}

// TestSafetyNetLooksQuietly: when nothing changed, the safety net is a
// look at a few things (the outbox's data_version and file, the spill
// folder, the limits), not a drain pass, whose milliseconds on a cold CPU
// cost dozens of the Go runtime's wake-ups; and what changed with no
// wake-up to announce it, the look finds.
func TestSafetyNetLooksQuietly(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dir := e.home
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	logs := e.inProcessDaemon("--endpoint", ep.URL, "--tick", "20ms", "--log-level", "debug")
	e.mustCLI("enqueue", "--id", "announced", `{"n":1}`)
	arr.await(t, "announced", 10*time.Second)

	// Counted from the first quiet look after the delivery on, once the
	// delivery's passes are over: the daemon looks, then passes, in turn.
	// A quiet look logged before the delivery (the daemon idle before the
	// enqueue) does not count: a loaded run took the pass after the
	// delivery for one in the quiet looks.
	looks := func() int { return strings.Count(logs.String(), quietLook) }
	before := looks()
	passes := strings.Count(logs.String(), "drain pass")
	for deadline := time.Now().Add(10 * time.Second); looks() <= before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no quiet safety-net look in 10 s at --tick 20ms, and %d drain passes",
				strings.Count(logs.String(), "drain pass")-passes)
		}
	}
	passes = strings.Count(logs.String(), "drain pass")
	start := looks()
	// A quiet look delivers nothing, so the log is its only trace: poll it.
	waitFor(t, 10*time.Second, "20 more quiet looks", func() bool { return looks() >= start+20 })
	if n := strings.Count(logs.String(), "drain pass") - passes; n > 0 {
		t.Errorf("%d drain passes in 20 safety-net looks with nothing new, want none; the daemon's log:\n%s", n, logs.String())
	}

	// An event committed with no wake-up (an older enqueue), and one
	// spilled with none: each look notices.
	if err := enqueueDB(filepath.Join(dir, dbFileName), time.Second, "unannounced", "hook", []byte(`{"n":2}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	arr.await(t, "unannounced", 10*time.Second)
	if _, err := spillEvent(mustOpenHome(t, dir), spilled{ID: "spilled", Kind: "hook", CreatedAt: time.Now(), Payload: `{"n":3}`}); err != nil {
		t.Fatal(err)
	}
	arr.await(t, "spilled", 10*time.Second)
}

// TestWALIndexHeaderMovesWithCommits: the safety net's look reads the
// outbox's WAL-index header, which must change with every commit by
// another connection (or process) and stay the same without one, on every
// OS (on Windows, through a handle that shares delete access).
func TestWALIndexHeaderMovesWithCommits(t *testing.T) {
	t.Parallel()
	h := mustOpenHomeCreate(t, ownHome(t))
	ob := mustOutbox(t, h, time.Now)
	t.Cleanup(func() { ob.Close() })
	before, err := ob.readWALIndexHeader()
	if err != nil {
		t.Fatalf("read the WAL-index header: %v", err)
	}
	if again, err := ob.readWALIndexHeader(); err != nil || again != before {
		t.Fatalf("the header changed with no commit (%v)", err)
	}
	for i := range 3 {
		if err := enqueueDB(h.path(dbFileName), time.Second, fmt.Sprintf("e%d", i), "hook", []byte(`{}`), time.Now()); err != nil {
			t.Fatal(err)
		}
		after, err := ob.readWALIndexHeader()
		if err != nil {
			t.Fatal(err)
		}
		if after == before {
			t.Fatalf("commit %d by another connection left the WAL-index header as it was", i)
		}
		before = after
	}
}
