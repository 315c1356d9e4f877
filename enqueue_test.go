package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
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

// badInput is what a hook can hand enqueue that is not an event it can
// queue: each must be kept as a dead letter, never block the agent.
type badInput struct {
	name   string
	stdin  string
	args   []string // after "enqueue"
	code   int      // without --strict
	reason string   // in the dead letter's reason
	stored string   // the dead letter's bytes, when not stdin
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

// deadLetters lists the dead letters of the test's home as 'outbox list
// --json' shows them.
func deadLetters(t *testing.T) []deadLetter {
	t.Helper()
	var out struct {
		Counts      counts       `json:"counts"`
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "outbox", "list", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out.DeadLetters
}

// TestEnqueueKeepsBadInput feeds enqueue what hooks really hand over when
// something is off. None may exit 2 (an agent reads it as "block this
// action") or write to stdout (an agent reads it as context); each is kept
// as a dead letter with its reason and its bytes, and none is ever sent.
func TestEnqueueKeepsBadInput(t *testing.T) {
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			home := testHome(t)
			mustCLI(t, "enqueue", "--id", "good", `{"good":true}`)
			out, errOut, code := cli(t, tc.stdin, append([]string{"enqueue"}, tc.args...)...)
			if code != tc.code || out != "" {
				t.Fatalf("exit %d, stdout %.100q; want exit %d and no output\nstderr: %.300s", code, out, tc.code, errOut)
			}
			if !strings.HasPrefix(errOut, "difflore: ") {
				t.Errorf("stderr %.300q, want a 'difflore: ' line", errOut)
			}
			dead := deadLetters(t)
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
			got, showErr, code := cli(t, "", "outbox", "show", dead[0].ID)
			if code != 0 || got != want {
				t.Errorf("outbox show: exit %d, %d bytes %.60q; want the %d bytes handed over\nstderr: %s", code, len(got), got, len(want), showErr)
			}
			if !strings.Contains(showErr, "dead") || !strings.Contains(showErr, tc.reason) {
				t.Errorf("outbox show says %q on stderr, want the state and the reason", showErr)
			}
			// Nothing broken goes out: the good event alone reaches the
			// endpoint, as valid JSON.
			outFile := filepath.Join(t.TempDir(), "out.jsonl")
			mustCLI(t, "drain", "--endpoint", fileURL(outFile))
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
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			home := testHome(t)
			mustCLI(t, "enqueue", "--strict", "--id", "good", `{"good":true}`)
			out, errOut, code := cli(t, tc.stdin, append([]string{"enqueue", "--strict"}, tc.args...)...)
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
	testHome(t)
	big := `{"big":"` + strings.Repeat("b", maxPayload+maxPayload/5) + `"}`
	if _, errOut, code := cli(t, big, "enqueue", "--id", "big"); code != 0 {
		t.Fatalf("enqueue 1.2 MiB: exit %d: %.300s", code, errOut)
	}
	if _, errOut, code := cli(t, `{"broken":`, "enqueue", "--id", "broken"); code != 0 {
		t.Fatalf("enqueue broken: exit %d: %.300s", code, errOut)
	}
	for i := range 3 {
		mustCLI(t, "enqueue", "--id", fmt.Sprintf("small-%d", i), `{"small":true}`)
	}
	_, errOut, code := cli(t, "", "outbox", "retry", "broken")
	if code != 1 || !strings.Contains(errOut, "broken") || !strings.Contains(errOut, "not one valid JSON value") {
		t.Errorf("outbox retry broken: exit %d, stderr %q; want 1 and why", code, errOut)
	}
	if out := mustCLI(t, "outbox", "retry", "big"); out != "1 dead letters back in the queue, 0 waiting events ready now\n" {
		t.Errorf("outbox retry big: %q", out)
	}
	out, errOut, code := cli(t, "", "outbox", "retry", "--all")
	if code != 0 || !strings.HasPrefix(out, "0 dead letters back in the queue") || !strings.Contains(out+errOut, "1 kept dead") {
		t.Errorf("outbox retry --all: exit %d, %q %q; want it to say it kept the broken one", code, out, errOut)
	}

	ep := newEndpoint(t, nil)
	mustCLI(t, "drain", "--endpoint", ep.URL)
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
	if dead := deadLetters(t); len(dead) != 1 || dead[0].ID != "broken" {
		t.Errorf("dead letters %+v, want broken alone", dead)
	}
}

// TestDeadLetterSpilled: when the outbox cannot be written, a dead letter is
// spilled like any event, its bytes exact, and replayed as a dead letter.
func TestDeadLetterSpilled(t *testing.T) {
	home := testHome(t)
	mustCLI(t, "enqueue", `{"n":0}`)
	db := filepath.Join(home, dbFileName)
	if err := os.Rename(db, db+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(db, 0o700); err != nil { // a folder where the outbox should be
		t.Fatal(err)
	}
	payload := "{\"a\":\"\xff\xfe\"}\n"
	out, errOut, code := cli(t, payload, "enqueue", "--id", "raw-1", "--kind", "hook.x")
	if code != 0 || out != "" {
		t.Fatalf("enqueue on an unwritable outbox: exit %d, %q %q", code, out, errOut)
	}
	if spills, _ := filepath.Glob(filepath.Join(home, spillDirName, "*.json")); len(spills) != 1 {
		t.Fatalf("%d spill files, want 1", len(spills))
	}
	os.Remove(db)
	if err := os.Rename(db+".away", db); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "out.jsonl")
	mustCLI(t, "drain", "--endpoint", fileURL(outFile))
	if lines := readLines(t, outFile); len(lines) != 1 {
		t.Errorf("the endpoint got %q, want the good event alone", lines)
	}
	dead := deadLetters(t)
	if len(dead) != 1 || dead[0].ID != "raw-1" || dead[0].Kind != "hook.x" || !strings.Contains(dead[0].LastError, "UTF-8") {
		t.Fatalf("dead letters %+v, want raw-1 with its reason", dead)
	}
	if got, _, _ := cli(t, "", "outbox", "show", "raw-1"); got != payload {
		t.Errorf("outbox show raw-1 = %q, want %q", got, payload)
	}
}

// writeSpillFiles writes n spill files as enqueue would, without the
// fsync, so that a test can make thousands cheaply.
func writeSpillFiles(t *testing.T, h home, prefix string, n int, payload string) {
	t.Helper()
	dir := h.path(spillDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range n {
		data, err := json.Marshal(spilled{ID: fmt.Sprintf("%s-%05d", prefix, i), Kind: "event", CreatedAt: now, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, newEventID(now)+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// replayAll replays the spill folder round by round until it is done, and
// returns how many spill files went into the outbox.
func replayAll(t *testing.T, h home, ob *outbox) int {
	t.Helper()
	n := 0
	for range 10000 {
		r, err := replaySpill(context.Background(), h, ob)
		if err != nil {
			t.Fatal(err)
		}
		if n += r.moved; !r.more {
			return n
		}
	}
	t.Fatal("spill replay still has more after 10000 rounds")
	return n
}

func countSpillFiles(t *testing.T, h home) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(h.path(spillDirName), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}

// TestSpillReplayInterleavesAndStops gives the daemon a large spill backlog:
// it must deliver between bounded chunks of replay rather than read every
// file first, and stop promptly when asked, leaving the rest in spill/.
func TestSpillReplayInterleavesAndStops(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	const n = 2000
	writeSpillFiles(t, h, "s", n, `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leftAtFirst := make(chan int, 1)
	ep := newEndpoint(t, func(i int, _ recorded) answer {
		if i == 0 {
			leftAtFirst <- countSpillFiles(t, h)
			cancel() // SIGTERM, as far as the daemon can tell
		}
		return answer{status: 200}
	})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--endpoint", ep.URL}, strings.NewReader(""), io.Discard, io.Discard)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("daemon did not stop within 2 minutes")
	}
	select {
	case left := <-leftAtFirst:
		if left == 0 {
			t.Errorf("the first delivery came only after all %d spill files were replayed", n)
		}
	default:
		t.Fatal("the daemon delivered nothing")
	}
	if left := countSpillFiles(t, h); left == 0 {
		t.Errorf("asked to stop at the first delivery, the daemon still replayed all %d spill files", n)
	}
}

// TestSpillReplayCancelled: a round of replay asked to stop moves nothing
// more and says that files are left.
func TestSpillReplayCancelled(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	writeSpillFiles(t, h, "s", 10, `{}`)
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := replaySpill(ctx, h, ob)
	if err != nil || r.moved != 0 || !r.more {
		t.Errorf("replaySpill on a cancelled context = %+v, %v; want nothing moved and more left", r, err)
	}
	if n := countSpillFiles(t, h); n != 10 {
		t.Errorf("%d spill files left, want 10", n)
	}
}

func mustOpenHomeCreate(t *testing.T, dir string) home {
	t.Helper()
	h, err := openHome(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestStatusCountsSpilled: the spill backlog shows in status, text and JSON.
func TestStatusCountsSpilled(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	mustCLI(t, "enqueue", `{}`)
	writeSpillFiles(t, h, "s", 3, `{}`)
	out, _, _ := cli(t, "", "status", "--json")
	var rep struct {
		Outbox map[string]any `json:"outbox"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if got := rep.Outbox["spilled"]; got != float64(3) {
		t.Errorf("status --json: outbox.spilled = %v, want 3\n%s", got, out)
	}
	if out, _, _ := cli(t, "", "status"); !strings.Contains(out, "3 spilled") {
		t.Errorf("status does not show the spill backlog:\n%s", out)
	}
}

// TestOversizedSpillFile: a spill file larger than enqueue ever writes (a
// sparse 1 GiB one here) becomes a dead letter without being read, and a
// spill file whose payload enqueue would not have queued (over 1 MiB, not
// JSON) becomes a dead letter rather than an event.
func TestOversizedSpillFile(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	writeSpillFiles(t, h, "big", 1, `{"big":"`+strings.Repeat("x", maxPayload)+`"}`)
	writeSpillFiles(t, h, "broken", 1, `{"broken":`)
	huge := filepath.Join(h.path(spillDirName), newEventID(time.Now())+".json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	outFile := filepath.Join(t.TempDir(), "out.jsonl")
	mustCLI(t, "drain", "--endpoint", fileURL(outFile))
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Errorf("replay allocated %d MiB: the 1 GiB spill file was read", grew>>20)
	}
	if lines := readLines(t, outFile); len(lines) != 0 {
		t.Errorf("the endpoint got %d events, want none", len(lines))
	}
	dead := deadLetters(t)
	if len(dead) != 3 {
		t.Fatalf("dead letters %+v, want 3", dead)
	}
	var reasons []string
	for _, d := range dead {
		reasons = append(reasons, d.LastError)
		payload, _, _ := cli(t, "", "outbox", "show", d.ID)
		if strings.Contains(d.LastError, "spill file") && len(payload) > 0 {
			t.Errorf("the dead letter of the huge spill file holds %d bytes of it", len(payload))
		}
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"larger than 1 MiB", "not one valid JSON value", "1.0 GiB"} {
		if !strings.Contains(all, want) {
			t.Errorf("no dead letter says %q:\n%s", want, all)
		}
	}
	// The huge file is kept aside, whole, for a person to look at.
	if fi, err := os.Stat(huge + ".toobig"); err != nil || fi.Size() != 1<<30 {
		t.Errorf("the huge spill file was not set aside whole: %v", err)
	}
	if n := countSpillFiles(t, h); n != 0 {
		t.Errorf("%d spill files left", n)
	}
}

// TestStaleSpillTempRemoved: a temporary file left in spill/ by an enqueue
// killed mid-write is removed when the daemon starts, once it is old enough
// that no live enqueue can be writing it; a fresh one is left alone.
func TestStaleSpillTempRemoved(t *testing.T) {
	h := mustOpenHomeCreate(t, testHome(t))
	dir := h.path(spillDirName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "."+newEventID(time.Now())+".json.tmp123")
	fresh := filepath.Join(dir, "."+newEventID(time.Now())+".json.tmp456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte(`{"id":`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * spillTempStale)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	inProcessDaemon(t)
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there after the daemon started (%v)", err)
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}
}

// TestBadUsageWithOpenStdin: a caller that got the command line wrong and
// left standard input open (a pipe no one closes) still gets its answer,
// and the mistake is recorded.
func TestBadUsageWithOpenStdin(t *testing.T) {
	testHome(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"partial":`))
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"enqueue", "--kindd", "x"}, pr, io.Discard, io.Discard)
	}()
	select {
	case err := <-done:
		if code := exitCode(err); code != 1 {
			t.Errorf("exit %d (%v), want 1", code, err)
		}
	case <-time.After(time.Minute):
		t.Fatal("enqueue still waits for standard input after a minute")
	}
	if dead := deadLetters(t); len(dead) != 1 || !strings.Contains(dead[0].LastError, "-kindd") ||
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
	testHome(t)
	in := &endlessX{left: maxDeadPayload + 3<<20}
	var stderr strings.Builder
	if err := run(context.Background(), []string{"enqueue", "--id", "huge"}, in, io.Discard, &stderr); err != nil {
		t.Fatalf("enqueue of 67 MiB: %v\n%s", err, stderr.String())
	}
	if in.left != 0 {
		t.Errorf("%d bytes of standard input left unread", in.left)
	}
	dead := deadLetters(t)
	if len(dead) != 1 || !strings.Contains(dead[0].LastError, "cut") || !strings.Contains(dead[0].LastError, fmt.Sprint(maxDeadPayload+3<<20)) {
		t.Fatalf("dead letters %+v, want one that says it was cut, and from what size", dead)
	}
	out, _, code := cli(t, "", "outbox", "show", "huge")
	if code != 0 || len(out) != maxDeadPayload || strings.Trim(out, "x") != "" {
		t.Errorf("outbox show: exit %d, %d bytes; want the first %d bytes", code, len(out), maxDeadPayload)
	}
}
