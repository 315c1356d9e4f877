package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWatchCommitsSeesWakeDaemon checks the seam on its own: nothing is
// announced while no one enqueues, and a wake-up from another connection to
// the same home (as enqueue sends it) is.
func TestWatchCommitsSeesWakeDaemon(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	wakeDaemon(h) // No one listens yet: nothing happens, nothing fails.
	changes, stop, err := watchCommits(h, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-changes:
		t.Fatal("a notice before any wake-up")
	case <-time.After(100 * time.Millisecond):
	}
	wakeDaemon(h)
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice of a wake-up after 5s")
	}
}

// TestWatchCommitsSafetyNet checks that the safety net comes with the
// watch: with no wake-up at all, a notice comes every tick, and a wake-up
// still comes at once when the tick is an hour away. Stop returns while
// the listener waits.
func TestWatchCommitsSafetyNet(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	changes, stop, err := watchCommits(h, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		select {
		case <-changes:
		case <-time.After(5 * time.Second):
			t.Fatalf("safety-net notice %d: none after 5s with a 20ms tick", i)
		}
	}
	stop()

	changes, stop, err = watchCommits(h, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	wakeDaemon(h)
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice of a wake-up after 5s")
	}
}

// TestWakeWithoutPolling runs a daemon whose safety-net poll is an hour
// away, so that only a wake-up can bring it an event in time, then enqueues
// from a separate process, as a hook does: the event must reach the
// endpoint within a second.
func TestWakeWithoutPolling(t *testing.T) {
	testHome(t)
	arr := newArrivals()
	ep := newEndpoint(t, arr.script(200))
	inProcessDaemon(t, "--endpoint", ep.URL, "--tick", "1h")
	for i := range 3 {
		id := fmt.Sprintf("woken-%d", i)
		if out, err := command(t, "enqueue", "--id", id, `{"hook":"PostToolUse"}`).CombinedOutput(); err != nil {
			t.Fatalf("enqueue: %v\n%s", err, out)
		}
		arr.await(t, id, time.Second)
	}
}

// TestWakeBurstCoalesces enqueues 1 000 events while the daemon is busy
// with a request (the endpoint holds its first request until the burst is
// over): the 1 000 wake-ups sent meanwhile must cost a few drain passes,
// counted in the daemon's debug log, not one pass each.
func TestWakeBurstCoalesces(t *testing.T) {
	testHome(t)
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
	logs := inProcessDaemon(t, "--endpoint", ep.URL, "--tick", "1h", "--batch", "10000", "--log-level", "debug")
	before := strings.Count(logs.String(), "drain pass")
	for i := range burst {
		mustCLI(t, "enqueue", "--id", fmt.Sprintf("b%04d", i), `{"burst":true}`)
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
