package main

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServiceHandlerStopsGracefully runs the daemon under the handler that
// answers the Windows service manager, with a fake channel of its
// requests: the daemon reports running, an Interrogate is answered with
// the state it is in, and Stop ends the daemon gracefully (it logs that it
// stopped, and the handler returns its nil error). It runs natively and,
// as a Windows program, under Wine.
func TestServiceHandlerStopsGracefully(t *testing.T) {
	t.Parallel()
	for _, req := range []serviceRequest{serviceStop, serviceShutdown} {
		t.Run(req.String(), func(t *testing.T) {
			env := newTestEnv(t)
			logs := &syncBuffer{ready: make(chan struct{})}
			daemonRun := func(ctx context.Context) error {
				return run(ctx, []string{"run"}, strings.NewReader(""), io.Discard, logs, env.getenv)
			}
			requests := make(chan serviceRequest)
			var mu sync.Mutex
			var states []serviceState
			report := func(s serviceState) {
				mu.Lock()
				defer mu.Unlock()
				states = append(states, s)
			}
			done := make(chan error, 1)
			go func() { done <- serveService(context.Background(), requests, report, daemonRun) }()
			select {
			case <-logs.ready:
			case err := <-done:
				t.Fatalf("the daemon ended before it was ready: %v\n%s", err, logs)
			case <-time.After(30 * time.Second):
				t.Fatalf("daemon not ready after 30s\n%s", logs)
			}
			requests <- serviceInterrogate
			requests <- req
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serveService: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the daemon still runs 30s after %s\n%s", req, logs)
			}
			if !strings.Contains(logs.String(), "daemon stopped") {
				t.Errorf("the daemon's log does not say it stopped:\n%s", logs)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []serviceState{serviceRunning, serviceRunning, serviceStopPending}
			if len(states) != len(want) || states[0] != want[0] || states[1] != want[1] || states[2] != want[2] {
				t.Errorf("states reported %v, want %v", states, want)
			}
		})
	}
}
