package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStatusCountsSpilled: the spill backlog shows in status, text and JSON.
func TestStatusCountsSpilled(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	h := mustOpenHomeCreate(t, e.home)
	e.mustCLI("enqueue", `{}`)
	writeSpillFiles(t, h, "s", 3, `{}`)
	out, _, _ := e.cli("", "status", "--json")
	var rep struct {
		Outbox map[string]any `json:"outbox"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if got := rep.Outbox["spilled"]; got != float64(3) {
		t.Errorf("status --json: outbox.spilled = %v, want 3\n%s", got, out)
	}
	if out, _, _ := e.cli("", "status"); !strings.Contains(out, "3 spilled") {
		t.Errorf("status does not show the spill backlog:\n%s", out)
	}
}

func TestStatusShowsPauseAndLastDelivery(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var mu sync.Mutex
	status := 200
	arr := newArrivals()
	ep := newEndpoint(t, func(n int, req recorded) answer {
		arr.script(200)(n, req)
		mu.Lock()
		defer mu.Unlock()
		return answer{status: status, body: "token expired"}
	})
	e.setenv("DIFFLORE_CLOUD_TOKEN", "tok-very-secret")
	e.mustCLI("enqueue", "--id", "s-0", `{}`)
	e.mustCLI("enqueue", "--id", "s-1", `{}`)
	// A child process: status will not vouch for its own process.
	e.startDaemon("--endpoint", ep.URL)
	arr.await(t, "s-1", 10*time.Second)
	status2 := func() statusReport {
		var rep statusReport
		if err := json.Unmarshal([]byte(e.mustCLI("status", "--json")), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// Nothing signals a change in what status reports: poll it.
	waitFor(t, 10*time.Second, "status to show the delivery", func() bool { return status2().Delivery.LastDeliveryCount == 2 })
	rep := status2()
	if rep.Delivery.LastDeliveryAt == "" || rep.Delivery.LastError != "" || rep.Delivery.Breaker != "closed" || rep.Endpoint == nil || *rep.Endpoint != ep.URL {
		t.Errorf("status after a delivery: %+v", rep)
	}
	if text := e.mustCLI("status"); !strings.Contains(text, "delivery: last 2 events at ") {
		t.Errorf("status text does not show the last delivery:\n%s", text)
	}

	mu.Lock()
	status = 401
	mu.Unlock()
	e.mustCLI("enqueue", "--id", "s-2", `{}`)
	// As above, the pause shows only in status.
	waitFor(t, 10*time.Second, "status to show the pause", func() bool { return status2().Delivery.PausedReason != "" })
	rep = status2()
	if !strings.Contains(rep.Delivery.PausedReason, "401 Unauthorized: token expired") || rep.Delivery.PausedSince == "" || rep.Outbox.Pending != 1 || rep.Outbox.Dead != 0 {
		t.Errorf("status while paused: %+v", rep)
	}
	text := e.mustCLI("status")
	if !strings.Contains(text, "paused:   since ") || !strings.Contains(text, "token expired") || !strings.Contains(text, "last success: 2 events at") {
		t.Errorf("status text does not show the pause and the last success:\n%s", text)
	}
	if strings.Contains(text, "tok-very-secret") {
		t.Errorf("status shows the token:\n%s", text)
	}
	for _, req := range ep.requests() {
		if req.header.Get("Authorization") != "Bearer tok-very-secret" {
			t.Errorf("request without the bearer token")
		}
	}
}

// TestStatusJSONEndpointNull: with no endpoint, status --json says null, the
// absence a program can test, and the text says (none).
func TestStatusJSONEndpointNull(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	out, _, _ := e.cli("", "status", "--json")
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if ep, ok := rep["endpoint"]; !ok || ep != nil {
		t.Errorf("status --json with no endpoint: endpoint = %#v, want null\n%s", ep, out)
	}
	if out, _, _ := e.cli("", "status"); !strings.Contains(out, "\nendpoint: (none)\n") {
		t.Errorf("status with no endpoint does not say (none):\n%s", out)
	}
	e.vars["DIFFLORE_CLOUD_URL"] = "https://ingest.example.com/v1"
	out, _, _ = e.cli("", "status", "--json")
	if !strings.Contains(out, `"endpoint": "https://ingest.example.com/v1"`) {
		t.Errorf("status --json with an endpoint does not name it:\n%s", out)
	}
}

// TestStatusTimesToTheMillisecond: every time status shows a person is RFC
// 3339 to the millisecond, whatever precision it was stored with.
func TestStatusTimesToTheMillisecond(t *testing.T) {
	t.Parallel()
	var rep statusReport
	rep.Daemon.State = "not_running"
	dl := &rep.Delivery
	dl.LastDeliveryAt, dl.LastDeliveryCount = "2026-11-26T00:44:32.20113828Z", 1
	dl.LastAttemptAt, dl.LastError = "2026-11-26T00:45:01.5Z", "503 Service Unavailable"
	dl.PausedReason, dl.PausedSince = "401 Unauthorized", "2026-11-26T00:45:01Z"
	dl.Breaker = "open until 2026-11-26T00:46:01Z"
	var b strings.Builder
	printStatus(&b, &rep, false)
	for _, want := range []string{
		"delivery: last attempt at 2026-11-26T00:45:01.500Z failed: 503",
		"last success: 1 event at 2026-11-26T00:44:32.201Z\n",
		"paused:   since 2026-11-26T00:45:01.000Z: 401",
		"breaker:  open until 2026-11-26T00:46:01.000Z\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status does not show %q:\n%s", want, b.String())
		}
	}
}

// TestStatusStartedAtExact starts a daemon and checks that the started_at
// status shows lies between the moment before it was started and the moment
// it was ready: not a second early, as a start time in whole seconds (the
// boot time Linux counts process starts from, or a time cut to the second)
// would be.
func TestStatusStartedAtExact(t *testing.T) {
	testHome(t)
	t.Setenv(asMainEnv, "1")
	before := time.Now()
	mustCLI(t, "run", "--detach")
	t.Cleanup(func() { cli(t, "", "stop") })
	after := time.Now()
	out := mustCLI(t, "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	started, err := time.Parse(time.RFC3339Nano, rep.Daemon.StartedAt)
	if err != nil {
		t.Fatalf("started_at %q: %v", rep.Daemon.StartedAt, err)
	}
	// Linux counts a process's start in ticks of 10 ms.
	const tick = 10 * time.Millisecond
	if started.Before(before.Add(-tick)) || started.After(after) {
		t.Errorf("started_at %s, want between %s and %s", started.Format(time.RFC3339Nano),
			before.UTC().Format(time.RFC3339Nano), after.UTC().Format(time.RFC3339Nano))
	}
}

// TestProcStartLinux reads a start time from a /proc as Linux writes it,
// with a command name that holds spaces and a parenthesis.
func TestProcStartLinux(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Field 22, the start, is 12345 ticks: 123.45 s after boot.
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 100\n"
	if err := os.WriteFile(filepath.Join(proc, "self", "stat"), []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "uptime"), []byte("200.50 390.00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	got, ok := procStartLinux(func() time.Time { return now }, proc)
	if want := now.Add(-77050 * time.Millisecond); !ok || !got.Equal(want) {
		t.Errorf("procStartLinux = %s, %v; want %s", got.Format(time.RFC3339Nano), ok, want.Format(time.RFC3339Nano))
	}
	// A process that reads its start in the tick it started in: the
	// uptime is its start, to the hundredth, which a float may hold a hair
	// below (16452.44 s is 16452.439999… s); the start is now, not unknown
	// (which fell back to a figure from the boot time in whole seconds,
	// 150 ms early in a run under load).
	stat = strings.Replace(stat, " 12345 ", " 1645244 ", 1)
	if err := os.WriteFile(filepath.Join(proc, "self", "stat"), []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "uptime"), []byte("16452.44 390.00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok := procStartLinux(func() time.Time { return now }, proc); !ok || !got.Equal(now) {
		t.Errorf("procStartLinux in the tick of the start = %s, %v; want %s", got.Format(time.RFC3339Nano), ok, now.Format(time.RFC3339Nano))
	}
	if _, ok := procStartLinux(func() time.Time { return now }, filepath.Join(proc, "none")); ok {
		t.Errorf("procStartLinux found a start where there is no /proc")
	}
}
