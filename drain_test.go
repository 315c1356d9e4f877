package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDrain(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for range 250 {
		e.mustCLI("enqueue", `{"x":1}`)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	got := e.mustCLI("drain", "--endpoint", fileURL(out), "--json")
	var sum drainSummary
	if err := json.Unmarshal([]byte(got), &sum); err != nil {
		t.Fatalf("drain --json: %v\n%s", err, got)
	}
	if sum.Delivered != 250 || sum.Pending != 0 {
		t.Errorf("drain summary %+v, want 250 delivered, 0 pending", sum)
	}
	if n := len(readLines(t, out)); n != 250 {
		t.Errorf("endpoint got %d events, want 250", n)
	}
	// A running daemon owns delivery: drain refuses.
	d := e.startDaemon()
	_, stderr, code := e.cli("", "drain", "--endpoint", fileURL(out))
	if code != 1 || !strings.Contains(stderr, "daemon is delivering") {
		t.Errorf("drain beside a daemon: exit %d, stderr %q", code, stderr)
	}
	e.mustCLI("stop")
	d.wait(t, 10*time.Second)
}

// TestDrainFailsWhenEventsRemain: drain is for CI and for a last flush, so
// it exits 1 when it did not deliver everything: events still pending (an
// endpoint that answers 500 or refuses the token), or events this drain
// dead-lettered (an endpoint that answers 400).
func TestDrainFailsWhenEventsRemain(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusInternalServerError, http.StatusUnauthorized, http.StatusBadRequest} {
		e := newTestEnv(t)
		e.mustCLI("enqueue", `{"n":1}`)
		e.mustCLI("enqueue", `{"n":2}`)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		out, stderr, code := e.cli("", "drain", "--endpoint", srv.URL)
		srv.Close()
		if code != 1 || !strings.Contains(out, "delivered 0 events") || !strings.Contains(stderr, "difflore: ") {
			t.Errorf("drain to an endpoint answering %d: exit %d, stdout %q, stderr %q; want exit 1 and why on stderr", status, code, out, stderr)
		}
	}
}
