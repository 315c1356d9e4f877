package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkCheckPayload measures the validation enqueue gives a typical
// valid payload on its fast path, before anything is written.
func BenchmarkCheckPayload(b *testing.B) {
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, err := checkPayload(benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func badInputs() []badInput {
	big := `{"x":"` + strings.Repeat("a", maxPayload+maxPayload/5) + `"}` // 1.2 MiB, valid
	return []badInput{
		{name: "1.2 MiB", stdin: big, code: 0, reason: "larger than 1 MiB"},
		{name: "1.2 MiB as argument", args: []string{big}, code: 0, reason: "larger than 1 MiB", stored: big},
		{name: "invalid JSON", stdin: `{"a": [1, 2`, code: 0, reason: "not one valid JSON value"},
		{name: "trailing data", stdin: `{"a":1} {"b":2}` + "\n", code: 0, reason: "not one valid JSON value"},
		{name: "invalid UTF-8", stdin: "{\"a\":\"\xff\"}", code: 0, reason: "not valid UTF-8"},
		{name: "empty stdin", stdin: "", code: 0, reason: "empty payload"},
		{name: "white space", stdin: " \n\t", code: 0, reason: "empty payload"},
		{name: "mistyped flag", stdin: `{"tool":"Bash"}`, args: []string{"--kindd", "claude.Stop"}, code: 1, reason: "-kindd"},
		{name: "bad kind", stdin: `{"tool":"Bash"}`, args: []string{"--kind", "a/b"}, code: 1, reason: `--kind "a/b"`},
		{name: "bad id", stdin: `{"tool":"Bash"}`, args: []string{"--id", "../x"}, code: 1, reason: `--id "../x"`},
		{name: "two arguments", stdin: "not json", args: []string{"1", "2"}, code: 1, reason: "one JSON argument, got 2"},
	}
}

// TestEnqueueKeepsBadInput feeds enqueue what hooks really hand over when
// something is off. None may exit 2 (an agent reads it as "block this
// action") or write to stdout (an agent reads it as context); each is kept
// as a dead letter with its reason and its bytes, and none is ever sent.
func TestEnqueueKeepsBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			home := e.home
			e.mustCLI("enqueue", "--id", "good", `{"good":true}`)
			out, errOut, code := e.cli(tc.stdin, append([]string{"enqueue"}, tc.args...)...)
			if code != tc.code || out != "" {
				t.Fatalf("exit %d, stdout %.100q; want exit %d and no output\nstderr: %.300s", code, out, tc.code, errOut)
			}
			if !strings.HasPrefix(errOut, "difflore: ") {
				t.Errorf("stderr %.300q, want a 'difflore: ' line", errOut)
			}
			dead := e.deadLetters()
			if len(dead) != 1 || !strings.Contains(dead[0].LastError, tc.reason) {
				t.Fatalf("dead letters %+v, want one whose reason says %q", dead, tc.reason)
			}
			if !strings.Contains(errOut, dead[0].ID) {
				t.Errorf("stderr %.300q does not name the dead letter %s", errOut, dead[0].ID)
			}
			want := tc.stored
			if want == "" {
				want = tc.stdin
			}
			got, showErr, code := e.cli("", "outbox", "show", dead[0].ID)
			if code != 0 || got != want {
				t.Errorf("outbox show: exit %d, %d bytes %.60q; want the %d bytes handed over\nstderr: %s", code, len(got), got, len(want), showErr)
			}
			if !strings.Contains(showErr, "dead") || !strings.Contains(showErr, tc.reason) {
				t.Errorf("outbox show says %q on stderr, want the state and the reason", showErr)
			}
			// Nothing broken goes out: the good event alone reaches the
			// endpoint, as valid JSON.
			outFile := filepath.Join(t.TempDir(), "out.jsonl")
			e.mustCLI("drain", "--endpoint", fileURL(outFile))
			lines := readLines(t, outFile)
			if len(lines) != 1 || !json.Valid([]byte(lines[0])) || !strings.Contains(lines[0], `"id":"good"`) {
				t.Errorf("the endpoint got %d lines, want the good event alone: %.300q", len(lines), lines)
			}
			if c := outboxCounts(t, home); c.Dead != 1 || c.Pending != 0 {
				t.Errorf("after the drain: %+v, want the dead letter left", c)
			}
		})
	}
}

// TestEnqueueStrictRefusesBadInput: with --strict, for scripts, bad input
// exits 2 and writes nothing, as enqueue used to; good input is queued.
func TestEnqueueStrictRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			home := e.home
			e.mustCLI("enqueue", "--strict", "--id", "good", `{"good":true}`)
			out, errOut, code := e.cli(tc.stdin, append([]string{"enqueue", "--strict"}, tc.args...)...)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %.100q; want exit 2 and no output\nstderr: %.300s", code, out, errOut)
			}
			if c := outboxCounts(t, home); c.Dead != 0 || c.Pending != 1 {
				t.Errorf("outbox %+v, want the good event alone", c)
			}
			if spills, _ := filepath.Glob(filepath.Join(home, spillDirName, "*")); len(spills) != 0 {
				t.Errorf("spill folder holds %v", spills)
			}
		})
	}
}

// TestRetryOversizedDeadLetter: a valid payload over 1 MiB is a dead letter
// that 'outbox retry' sends, alone, past the batch's byte budget; a dead
// letter whose bytes are not JSON is never put back in the queue.
func TestRetryOversizedDeadLetter(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	big := `{"big":"` + strings.Repeat("b", maxPayload+maxPayload/5) + `"}`
	if _, errOut, code := e.cli(big, "enqueue", "--id", "big"); code != 0 {
		t.Fatalf("enqueue 1.2 MiB: exit %d: %.300s", code, errOut)
	}
	if _, errOut, code := e.cli(`{"broken":`, "enqueue", "--id", "broken"); code != 0 {
		t.Fatalf("enqueue broken: exit %d: %.300s", code, errOut)
	}
	for i := range 3 {
		e.mustCLI("enqueue", "--id", fmt.Sprintf("small-%d", i), `{"small":true}`)
	}
	_, errOut, code := e.cli("", "outbox", "retry", "broken")
	if code != 1 || !strings.Contains(errOut, "broken") || !strings.Contains(errOut, "not one valid JSON value") {
		t.Errorf("outbox retry broken: exit %d, stderr %q; want 1 and why", code, errOut)
	}
	if out := e.mustCLI("outbox", "retry", "big"); out != "1 dead letter back in the queue, 0 waiting events ready now\n" {
		t.Errorf("outbox retry big: %q", out)
	}
	out, errOut, code := e.cli("", "outbox", "retry", "--all")
	if code != 0 || !strings.HasPrefix(out, "0 dead letters back in the queue") || !strings.Contains(out+errOut, "1 kept dead") {
		t.Errorf("outbox retry --all: exit %d, %q %q; want it to say it kept the broken one", code, out, errOut)
	}

	ep := newEndpoint(t, nil)
	e.mustCLI("drain", "--endpoint", ep.URL)
	var sent []string
	for _, req := range ep.requests() {
		for _, e := range req.batch.Events {
			sent = append(sent, e.ID)
			if e.ID == "big" && (len(req.batch.Events) != 1 || string(e.Payload) != big) {
				t.Errorf("big went out in a batch of %d, %d payload bytes; want alone and byte for byte", len(req.batch.Events), len(e.Payload))
			}
			if e.ID == "broken" {
				t.Errorf("the broken dead letter was sent")
			}
		}
	}
	if len(sent) != 4 {
		t.Errorf("sent %v, want big and the three small events", sent)
	}
	if dead := e.deadLetters(); len(dead) != 1 || dead[0].ID != "broken" {
		t.Errorf("dead letters %+v, want broken alone", dead)
	}
}

// TestBadUsageWithOpenStdin: a caller that got the command line wrong and
// left standard input open (a pipe no one closes) still gets its answer,
// and the mistake is recorded.
func TestBadUsageWithOpenStdin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.useQuickWaits()
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"partial":`))
	done := make(chan error, 1)
	go func() {
		done <- runTestEnv(context.Background(), []string{"enqueue", "--kindd", "x"}, pr, io.Discard, io.Discard, e.getenv)
	}()
	select {
	case err := <-done:
		if code := exitCode(err); code != 1 {
			t.Errorf("exit %d (%v), want 1", code, err)
		}
	case <-time.After(time.Minute):
		t.Fatal("enqueue still waits for standard input after a minute")
	}
	if dead := e.deadLetters(); len(dead) != 1 || !strings.Contains(dead[0].LastError, "-kindd") ||
		!strings.Contains(dead[0].LastError, "standard input did not end") {
		t.Errorf("dead letters %+v, want one naming the mistake and the open standard input", dead)
	}
}

// endlessX is a standard input of n bytes of 'x' that counts what is left.
type endlessX struct{ left int64 }

func (r *endlessX) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.left))
	for i := range n {
		p[i] = 'x'
	}
	r.left -= int64(n)
	return n, nil
}

// TestEnqueueCutsAt64MiB: a payload over the dead letters' cap is cut, its
// first 64 MiB kept and the rest drained, so that the agent writing it sees
// no broken pipe; the reason says so.
func TestEnqueueCutsAt64MiB(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	in := &endlessX{left: maxDeadPayload + 3<<20}
	var stderr strings.Builder
	if err := runTestEnv(context.Background(), []string{"enqueue", "--id", "huge"}, in, io.Discard, &stderr, e.getenv); err != nil {
		t.Fatalf("enqueue of 67 MiB: %v\n%s", err, stderr.String())
	}
	if in.left != 0 {
		t.Errorf("%d bytes of standard input left unread", in.left)
	}
	dead := e.deadLetters()
	if len(dead) != 1 || !strings.Contains(dead[0].LastError, "cut") || !strings.Contains(dead[0].LastError, fmt.Sprint(maxDeadPayload+3<<20)) {
		t.Fatalf("dead letters %+v, want one that says it was cut, and from what size", dead)
	}
	out, _, code := e.cli("", "outbox", "show", "huge")
	if code != 0 || len(out) != maxDeadPayload || strings.Trim(out, "x") != "" {
		t.Errorf("outbox show: exit %d, %d bytes; want the first %d bytes", code, len(out), maxDeadPayload)
	}
}

// TestEnqueueRejectsBadInput: with --strict, bad input exits 2 and writes
// nothing, not even the data home (TestEnqueueKeepsBadInput has the hook's
// default).
func TestEnqueueRejectsBadInput(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", maxPayload) + `"}`
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"not json", "", []string{"enqueue", "--strict", "hello"}},
		{"two values", "", []string{"enqueue", "--strict", `{"a":1} {"b":2}`}},
		{"truncated", `{"a": [1, 2`, []string{"enqueue", "--strict"}},
		{"over 1 MiB", big, []string{"enqueue", "--strict"}},
		{"over 1 MiB as argument", "", []string{"enqueue", "--strict", big}},
		{"empty stdin", "", []string{"enqueue", "--strict"}},
		{"white space only", " \n\t", []string{"enqueue", "--strict"}},
		{"two arguments", "", []string{"enqueue", "--strict", "1", "2"}},
		{"bad id", "", []string{"enqueue", "--strict", "--id", "../../etc/passwd", "{}"}},
		{"empty kind", "", []string{"enqueue", "--strict", "--kind", "", "{}"}},
		{"unknown flag", "", []string{"enqueue", "--strict", "--nope", "{}"}},
		{"unknown flag before --strict", "", []string{"enqueue", "--nope", "--strict", "{}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testHome(t)
			_, stderr, code := cli(t, tt.stdin, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "difflore: ") {
				t.Errorf("stderr = %q, want a 'difflore: ' message", stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("bad input created the data home (stat: %v)", err)
			}
		})
	}
	// With an existing outbox, bad input leaves it unchanged.
	dir := testHome(t)
	mustCLI(t, "enqueue", `{"ok":1}`)
	if _, _, code := cli(t, `{"a":`, "enqueue", "--strict"); code != 2 {
		t.Fatalf("truncated payload: exit %d, want 2", code)
	}
	if c := outboxCounts(t, dir); c.Pending != 1 {
		t.Errorf("pending = %d after one good and one bad enqueue, want 1", c.Pending)
	}
}

func TestEnqueueStoresRepeatedIDOnce(t *testing.T) {
	dir := testHome(t)
	mustCLI(t, "enqueue", "--id", "same", `{"n":1}`)
	mustCLI(t, "enqueue", "--id", "same", `{"n":2}`)
	mustCLI(t, "enqueue", `{"n":3}`)
	if c := outboxCounts(t, dir); c.Pending != 2 {
		t.Errorf("pending = %d, want 2", c.Pending)
	}
}
