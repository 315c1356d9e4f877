package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDrain(t *testing.T) {
	testHome(t)
	for range 250 {
		mustCLI(t, "enqueue", `{"x":1}`)
	}
	out := filepath.Join(t.TempDir(), "out.jsonl")
	got := mustCLI(t, "drain", "--endpoint", fileURL(out), "--json")
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
	d := startDaemon(t)
	_, stderr, code := cli(t, "", "drain", "--endpoint", fileURL(out))
	if code != 1 || !strings.Contains(stderr, "daemon is delivering") {
		t.Errorf("drain beside a daemon: exit %d, stderr %q", code, stderr)
	}
	mustCLI(t, "stop")
	d.wait(t, 10*time.Second)
}
