package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1048576", want: 1 << 20},
		{in: "2MiB", want: 2 << 20},
		{in: "2mib", want: 2 << 20},
		{in: "500MB", want: 500e6},
		{in: "1GiB", want: 1 << 30},
		{in: "3 GB", want: 3e9},
		{in: "10KiB", want: 10 << 10},
		{in: "7kb", want: 7000},
		{in: "1TiB", want: 1 << 40},
		{in: "100B", want: 100},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "1.5GiB", bad: true},
		{in: "-1", bad: true},
		{in: "2XB", bad: true},
		{in: "99999999999TiB", bad: true},
	} {
		got, err := parseSize(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, bad %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "12h", want: 12 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "720h0m0s", want: 720 * time.Hour},
		{in: "off", want: 0},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "d", bad: true},
		{in: "-1d", bad: true},
		{in: "-5h", bad: true},
		{in: "1.5d", bad: true},
		{in: "soon", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseAge(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("parseAge(%q) = %v, %v; want %v, bad %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestRunRefusesBadLimits(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, args := range [][]string{
		{"run", "--max-size", "lots"},
		{"run", "--max-size", "512KiB"},
		{"run", "--max-age", "forever"},
	} {
		if _, stderr, code := e.cli("", args...); code != 2 || !strings.Contains(stderr, args[2]) {
			t.Errorf("difflore %s: exit %d, stderr %q; want 2 naming %q", strings.Join(args, " "), code, stderr, args[2])
		}
	}
}

// gapsIn splits what an endpoint received into the events and the gap
// reports.
func gapsIn(t *testing.T, evs []wireEvent) (events []wireEvent, gaps []gap) {
	t.Helper()
	for _, e := range evs {
		if e.Kind != gapKind {
			events = append(events, e)
			continue
		}
		var g gap
		if err := json.Unmarshal(e.Payload, &g); err != nil {
			t.Fatalf("gap payload %s: %v", e.Payload, err)
		}
		var n int64
		for _, k := range g.Kinds {
			n += k
		}
		if n != g.Evicted || g.FirstCreatedAt == "" || g.FirstCreatedAt > g.LastCreatedAt {
			t.Errorf("gap %s: kinds add up to %d, dates %q..%q", e.Payload, n, g.FirstCreatedAt, g.LastCreatedAt)
		}
		gaps = append(gaps, g)
	}
	return events, gaps
}

// statusStore is the outbox part of 'status --json', in e.
func (e *testEnv) statusStore() storeStatus {
	e.t.Helper()
	out, _, _ := e.cli("", "status", "--json")
	return parseStatusStore(e.t, out)
}

// parseStatusStore reads the outbox part out of what status --json printed.
func parseStatusStore(t *testing.T, out string) storeStatus {
	t.Helper()
	var rep struct {
		Outbox storeStatus `json:"outbox"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return rep.Outbox
}

// TestMaxSizeEvictsOldestAndReportsGaps fills an outbox well past a 1 MiB
// max_size with no endpoint, as a week offline would: the daemon keeps it
// under the limit by evicting the oldest pending events, status warns and
// counts them, and once an endpoint is back, every accepted event is
// either delivered or counted by a delivered difflore.gap event, exactly.
func TestMaxSizeEvictsOldestAndReportsGaps(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	e.useQuickWaits()
	const maxSize = 1 << 20
	d := e.startDaemon("--max-size", "1MiB")

	payload := `{"blob":"` + strings.Repeat("x", 16<<10) + `"}`
	const chunk, chunks = 16, 8 // 256 KiB a chunk, 2 MiB in all
	dbPath := home + string(os.PathSeparator) + dbFileName
	accepted := 0
	for c := range chunks {
		for range chunk {
			if _, stderr, code := e.cli(payload, "enqueue", "--id", fmt.Sprintf("e%04d", accepted)); code != 0 {
				t.Fatalf("enqueue: exit %d: %s", code, stderr)
			}
			accepted++
		}
		// Between two housekeeping runs the outbox may pass max_size by
		// what was committed meanwhile: here, one chunk.
		if fi, err := os.Stat(dbPath); err != nil || fi.Size() > maxSize+chunk*int64(len(payload))+64<<10 {
			t.Fatalf("chunk %d: outbox.db is %d bytes (%v), over max_size plus one chunk", c, fi.Size(), err)
		}
		// Eviction signals nothing outside the daemon: poll status.
		waitFor(t, 30*time.Second, "the daemon to bring the outbox under max_size", func() bool {
			return e.statusStore().SizeBytes <= maxSize
		})
	}
	st := e.statusStore()
	if st.Gaps == 0 || st.Evicted == 0 || st.MaxSize != maxSize || st.Warning == "" {
		t.Errorf("status after filling: %+v; want gaps, evictions, max_size %d and a warning", st, maxSize)
	}
	if out, _, _ := e.cli("", "status"); !strings.Contains(out, "warning:") || !strings.Contains(out, fmt.Sprintf("evicted %d events", st.Evicted)) {
		t.Errorf("status text shows no warning or gaps:\n%s", out)
	}
	e.mustCLI("stop")
	d.wait(t, 30*time.Second)

	out := dbPath + ".jsonl"
	e.startDaemon("--max-size", "1MiB", "--endpoint", fileURL(out))
	var got []wireEvent
	// How many events arrive depends on the evictions; only the drained outbox says all did.
	waitFor(t, 30*time.Second, "every event delivered", func() bool {
		// The file is read once the outbox is empty: every line is then
		// in it, synced before its event was acknowledged.
		c := outboxCounts(t, home)
		return c.Pending == 0 && c.Inflight == 0
	})
	for _, l := range readLines(t, out) {
		var e wireEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	events, gaps := gapsIn(t, got)
	var evicted, bytes int64
	for _, g := range gaps {
		evicted += g.Evicted
		bytes += g.Bytes
		if g.Reason != reasonMaxSize || g.Kinds["event"] != g.Evicted {
			t.Errorf("gap %+v: want reason max_size, only kind event", g)
		}
	}
	if int64(len(events))+evicted != int64(accepted) {
		t.Errorf("delivered %d + evicted %d != accepted %d", len(events), evicted, accepted)
	}
	if int64(len(gaps)) != st.Gaps || evicted != st.Evicted || bytes != evicted*int64(len(payload)) {
		t.Errorf("%d gaps delivered for %d events, %d bytes; status counted %d gaps, %d events", len(gaps), evicted, bytes, st.Gaps, st.Evicted)
	}
	// The oldest went: what was delivered is the newest events, in order.
	for i, e := range events {
		if want := fmt.Sprintf("e%04d", int(evicted)+i); e.ID != want {
			t.Fatalf("delivered event %d is %s, want %s: eviction was not oldest first", i, e.ID, want)
		}
	}
}

// newLimitRig is an outbox on a fake clock with a limiter for it.
func newLimitRig(t *testing.T, l limits) (*outbox, *limiter, *fakeClock) {
	t.Helper()
	h := mustOpenHomeCreate(t, ownHome(t))
	clk := newFakeClock()
	ob := mustOutbox(t, h, clk.now)
	t.Cleanup(func() { ob.Close() })
	return ob, newLimiter(l, h, clk.now, slog.New(slog.DiscardHandler)), clk
}

// TestMaxAgeEvictsAndReports queues events over two days of a fake clock:
// those older than max_age are evicted in one run once the oldest passes
// max_age plus its slack, and a drain delivers the rest and the gap, whose
// counts and dates say exactly what went.
func TestMaxAgeEvictsAndReports(t *testing.T) {
	t.Parallel()
	r := newRig(t, always(answer{status: 200}))
	lim := newLimiter(limits{maxSize: defaultMaxSize, maxAge: 12 * time.Hour}, home{dir: t.TempDir()}, r.clk.now, slog.New(slog.DiscardHandler))
	start := r.clk.now()
	for i := range 48 { // one an hour, two kinds
		kind := []string{"a.kind", "b.kind"}[i%2]
		if err := r.ob.insert(fmt.Sprintf("h%02d", i), kind, []byte(`{"hour":1}`), r.clk.now()); err != nil {
			t.Fatal(err)
		}
		r.clk.advance(time.Hour)
	}
	// Now is start+48h: the events of hours 0..35 are older than 12h.
	if evicted, more := lim.enforce(r.ob, true); !evicted || more {
		t.Fatalf("enforce: evicted %v, more %v; want one run", evicted, more)
	}
	// The oldest left is now exactly 12h old: no run until it is older
	// than 12h plus the slack (2 %, about 14 minutes).
	r.clk.advance(10 * time.Minute)
	if evicted, _ := lim.enforce(r.ob, true); evicted {
		t.Error("evicted again within the slack")
	}
	r.clk.advance(10 * time.Minute)
	if evicted, _ := lim.enforce(r.ob, true); !evicted {
		t.Error("nothing evicted past max_age plus the slack")
	}
	r.drain()
	var got []wireEvent
	for _, req := range r.ep.requests() {
		got = append(got, req.batch.Events...)
	}
	events, gaps := gapsIn(t, got)
	if len(gaps) != 2 {
		t.Fatalf("%d gaps delivered, want 2", len(gaps))
	}
	g := gaps[0]
	want := gap{Evicted: 36, Bytes: 36 * 10, Kinds: map[string]int64{"a.kind": 18, "b.kind": 18},
		FirstCreatedAt: wireTime(start.UnixMilli()), LastCreatedAt: wireTime(start.Add(35 * time.Hour).UnixMilli()), Reason: reasonMaxAge}
	if g.Evicted != want.Evicted || g.Bytes != want.Bytes || fmt.Sprint(g.Kinds) != fmt.Sprint(want.Kinds) ||
		g.FirstCreatedAt != want.FirstCreatedAt || g.LastCreatedAt != want.LastCreatedAt || g.Reason != want.Reason || !g.Exact {
		t.Errorf("gap %+v, want %+v", g, want)
	}
	if len(events)+int(g.Evicted+gaps[1].Evicted) != 48 || gaps[1].Evicted != 1 || len(events) == 0 || events[0].ID != "h37" {
		t.Errorf("delivered %d events from %v, then evicted %d; want hours 36 then 37..47", len(events), events[0].ID, gaps[1].Evicted)
	}
}

// TestDeadLettersHaveTheirOwnLimit fills the dead letters past their share
// of max_size while pending events stay: only the oldest dead letters go.
func TestDeadLettersHaveTheirOwnLimit(t *testing.T) {
	t.Parallel()
	ob, lim, clk := newLimitRig(t, limits{maxSize: 10 << 20})
	blob := []byte(strings.Repeat("d", 10<<10))
	for i := range 200 { // 2 MiB of dead letters, twice their 1 MiB share
		if err := ob.insertDead(fmt.Sprintf("d%03d", i), "bad", blob, clk.now(), "not JSON", true); err != nil {
			t.Fatal(err)
		}
		if err := ob.insert(fmt.Sprintf("p%03d", i), "event", []byte(`{}`), clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	if evicted, _ := lim.enforce(ob, true); !evicted {
		t.Fatal("nothing evicted")
	}
	dead, err := ob.deadBytes()
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(10<<20) * deadShare / 100; dead > limit || dead < limit/2 {
		t.Errorf("dead letters hold %d bytes, want at most their share %d (and not much less)", dead, limit)
	}
	c, err := ob.counts()
	if err != nil {
		t.Fatal(err)
	}
	if c.Pending != 201 { // the 200 events and the gap report
		t.Errorf("%d pending, want the 200 events and one gap", c.Pending)
	}
	if r := rowOf(t, ob.conn, "d000"); r.state != -1 {
		t.Error("the oldest dead letter is still there")
	}
	if r := rowOf(t, ob.conn, "d199"); r.state != stateDead {
		t.Error("the newest dead letter went")
	}
}

// TestFullDiskKeepsOutboxFromGrowing gives the outbox a generous max_size
// on a disk that has less than 5 % free: while the endpoint takes events,
// nothing is evicted, since deliveries shrink the outbox and evicting gives
// the disk next to nothing back; while it takes none, the outbox keeps
// what it held, the oldest going as new events come, never less.
func TestFullDiskKeepsOutboxFromGrowing(t *testing.T) {
	t.Parallel()
	ob, lim, clk := newLimitRig(t, limits{maxSize: defaultMaxSize})
	taking := true
	lim.taking = func() bool { return taking }
	add := func(prefix string, n int) {
		for i := range n {
			if err := ob.insert(fmt.Sprintf("%s%03d", prefix, i), "event", []byte(`{"b":"`+strings.Repeat("y", 4<<10)+`"}`), clk.now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("a", 300)
	const total = 100 << 20
	lim.disk = func(string) (uint64, uint64, error) { return total*minFreeDisk/100 - 512<<10, total, nil }
	if evicted, _ := lim.enforce(ob, true); evicted {
		t.Fatal("evicted on a full disk while the endpoint takes events")
	}
	add("b", 50)
	if evicted, _ := lim.enforce(ob, true); evicted {
		t.Fatal("evicted new events, before their first attempt, while the endpoint takes events")
	}
	held, err := ob.size()
	if err != nil {
		t.Fatal(err)
	}
	taking = false
	if evicted, _ := lim.enforce(ob, true); evicted {
		t.Fatal("the outbox shrank on a full disk once the endpoint stopped taking events")
	}
	add("c", 50)
	if evicted, _ := lim.enforce(ob, true); !evicted {
		t.Fatal("the outbox grew into the reserve while the endpoint takes no events")
	}
	after, err := ob.size()
	if err != nil {
		t.Fatal(err)
	}
	if after.used > held.used || after.used < held.used-held.used/50-8<<10 {
		t.Errorf("outbox uses %d bytes, want what it held, %d, within 2 %% and an event", after.used, held.used)
	}
	if r := rowOf(t, ob.conn, "a000"); r.state != -1 {
		t.Error("the oldest event is still there")
	}
	if r := rowOf(t, ob.conn, "c049"); r.state != statePending {
		t.Error("the newest event went")
	}
	gaps := gapsInOutbox(t, ob)
	c, err := ob.counts()
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, 400, c.Pending-int64(len(gaps)), c.Dead, gaps)
	lim.disk = func(string) (uint64, uint64, error) { return total / 2, total, nil }
	add("d", 50)
	if evicted, _ := lim.enforce(ob, true); evicted {
		t.Error("evicted with half the disk free")
	}
}

// TestSizeLimit is the limit sizePlan enforces from max_size, the disk's
// figures, what the outbox holds and whether the endpoint takes events.
func TestSizeLimit(t *testing.T) {
	t.Parallel()
	const mib, total = 1 << 20, 1000 << 20 // the reserve is 50 MiB
	for _, tc := range []struct {
		name       string
		maxSize    int64
		free       uint64
		file, used int64
		held       int64
		want       int64
		diskErr    error
		wantErr    bool
	}{
		{name: "plenty free: max_size", maxSize: 100 * mib, free: 500 * mib, file: 10 * mib, used: 10 * mib, held: 10 * mib, want: 100 * mib},
		{name: "room under max_size", maxSize: 100 * mib, free: 60 * mib, file: 10 * mib, used: 10 * mib, held: 10 * mib, want: 20 * mib},
		{name: "in the reserve: what it held", maxSize: 100 * mib, free: 10 * mib, file: 30 * mib, used: 30 * mib, held: 25 * mib, want: 25 * mib},
		{name: "disk full: never below what it held", maxSize: 100 * mib, free: 0, file: 30 * mib, used: 30 * mib, held: 30 * mib, want: 30 * mib},
		{name: "held over max_size: max_size", maxSize: 20 * mib, free: 0, file: 30 * mib, used: 30 * mib, held: 30 * mib, want: 20 * mib},
		{name: "no free space on this OS: max_size", maxSize: 100 * mib, diskErr: errNoDiskInfo, want: 100 * mib},
		{name: "unreadable: max_size, and why", maxSize: 100 * mib, diskErr: errors.New("statfs: boom"), want: 100 * mib, wantErr: true},
	} {
		lim := newLimiter(limits{maxSize: tc.maxSize}, home{dir: t.TempDir()}, time.Now, slog.New(slog.DiscardHandler))
		lim.disk = func(string) (uint64, uint64, error) { return tc.free, total, tc.diskErr }
		lim.held, lim.heldSet = tc.held, true
		got, err := lim.sizeLimit(storeSize{used: tc.used, file: tc.file})
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: sizeLimit = %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestDiskFiguresForUser: the free share is what df shows for any user,
// 100 less its Use%, from statfs's figures: the blocks kept for root
// count neither as free nor in the size.
func TestDiskFiguresForUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		f                 diskFigures
		wantFree, wantAll uint64
	}{
		// df: Size 1000, Used 900, Avail 50, Use% 95 (a 5 % root reserve).
		{name: "ext4 with a root reserve", f: diskFigures{total: 1000, free: 100, avail: 50}, wantFree: 50, wantAll: 950},
		// Root wrote into its reserve: nothing available, Use% 100.
		{name: "the reserve in use", f: diskFigures{total: 1000, free: 20, avail: 0}, wantFree: 0, wantAll: 980},
		{name: "no reserve (tmpfs, Windows)", f: diskFigures{total: 1000, free: 300, avail: 300}, wantFree: 300, wantAll: 1000},
		{name: "empty", f: diskFigures{total: 1000, free: 1000, avail: 950}, wantFree: 950, wantAll: 950},
	} {
		free, all := tc.f.forUser()
		if free != tc.wantFree || all != tc.wantAll {
			t.Errorf("%s: %+v.forUser() = %d free of %d, want %d of %d", tc.name, tc.f, free, all, tc.wantFree, tc.wantAll)
		}
	}
}

// TestDiskSpace reads the free space of a real file system, as the limits
// do on every OS (statfs, GetDiskFreeSpaceEx).
func TestDiskSpace(t *testing.T) {
	t.Parallel()
	free, total, err := diskSpace(t.TempDir())
	if errors.Is(err, errNoDiskInfo) {
		t.Skip(err)
	}
	if err != nil || total == 0 || free > total {
		t.Errorf("diskSpace: free %d of %d, %v", free, total, err)
	}
	if _, _, err := diskSpace(t.TempDir() + "/missing"); err == nil {
		t.Error("diskSpace of a missing folder: no error")
	}
}

// TestLimitsDueWithoutNews: between passes, the daemon's safety net asks
// the limiter whether a limit may be due with nothing committed since it
// last ran, from the clock and the free disk space alone: max_age passing,
// dead letters left unmeasured, the disk filling.
func TestLimitsDueWithoutNews(t *testing.T) {
	t.Parallel()
	ob, lim, clk := newLimitRig(t, limits{maxSize: defaultMaxSize, maxAge: 12 * time.Hour})
	start := clk.now()
	const total = 100 << 20
	lim.disk = func(string) (uint64, uint64, error) { return total / 2, total, nil }
	if !lim.dueWithoutNews(true) {
		t.Error("due = false before the limiter ever measured")
	}
	for i := range 300 {
		if err := ob.insert(fmt.Sprintf("e%03d", i), "event", []byte(`{"b":"`+strings.Repeat("y", 4<<10)+`"}`), clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	lim.enforce(ob, true)
	if lim.dueWithoutNews(true) {
		t.Error("due = true right after a run, with half the disk free")
	}

	clk.advance(30 * time.Second)
	lim.enforce(ob, true) // within deadCheckEvery: the dead letters go unmeasured
	if lim.dueWithoutNews(true) {
		t.Error("due = true before deadCheckEvery passed")
	}
	clk.advance(deadCheckEvery / 2)
	if !lim.dueWithoutNews(true) {
		t.Error("due = false deadCheckEvery after a run that skipped the dead letters")
	}
	lim.enforce(ob, true)
	if lim.dueWithoutNews(true) {
		t.Error("due = true after a run that measured everything")
	}

	due, ok := lim.ageDue()
	if want := start.Add(12*time.Hour + 12*time.Hour/evictSlack + time.Millisecond); !ok || !due.Equal(want) {
		t.Errorf("ageDue = %v, %v; want %v, the first millisecond past max_age and its slack", due, ok, want)
	}
	clk.set(due.Add(-time.Millisecond))
	if lim.dueWithoutNews(true) {
		t.Error("due = true a millisecond before ageDue")
	}
	if p, evict, _ := lim.agePlan(ob); evict {
		t.Errorf("agePlan evicts a millisecond before ageDue: %+v", p)
	}
	clk.set(due)
	if !lim.dueWithoutNews(true) {
		t.Error("due = false at ageDue")
	}
	if _, evict, _ := lim.agePlan(ob); !evict {
		t.Error("agePlan does not evict at ageDue")
	}
	clk.advance(time.Minute)
	lim.enforce(ob, true) // evicts them all
	lim.enforce(ob, true) // the pass the safety net then makes measures again
	if lim.dueWithoutNews(true) {
		t.Error("due = true once the expired events were evicted")
	}

	// With no endpoint taking events, the outbox may keep on a full disk
	// what it held when first measured (300 events, about 1.3 MiB), not
	// what it grew to since.
	if err := ob.insert("late", "event", []byte(`{"b":"`+strings.Repeat("y", 2<<20)+`"}`), clk.now()); err != nil {
		t.Fatal(err)
	}
	lim.enforce(ob, false)
	lim.disk = func(string) (uint64, uint64, error) { return 0, total, nil }
	if !lim.dueWithoutNews(true) {
		t.Error("due = false with the disk filled and the outbox grown past what it held")
	}
	if lim.dueWithoutNews(false) {
		t.Error("due = true with the disk filled but nothing pending to evict")
	}
}

// gapsInOutbox reads the payloads of the gap events an outbox holds.
func gapsInOutbox(t *testing.T, ob *outbox) []gap {
	t.Helper()
	var gaps []gap
	err := sqlitex.Execute(ob.conn, `SELECT payload FROM events WHERE kind = '`+gapKind+`' ORDER BY seq`, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			var g gap
			if err := json.Unmarshal([]byte(stmt.ColumnText(0)), &g); err != nil {
				return err
			}
			gaps = append(gaps, g)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return gaps
}

// TestEvictionKeepsWhatFits queues 4000 events while no daemon runs, six
// times max_size (1 MiB) and more, then lets the limiter bring the outbox
// under it, as a daemon's first housekeeping does: it must take only what
// is over, so that the outbox then holds what fits, within 2 % (and one
// event) under the limit, never emptier, and the gap must count exactly
// what went. Rows of 1.5, 2.1 and 3 KB sit differently in 4 KiB pages.
func TestEvictionKeepsWhatFits(t *testing.T) {
	t.Parallel()
	const maxSize, queued = 1 << 20, 4000
	for _, size := range []int{1500, 2100, 3000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			ob, lim, clk := newLimitRig(t, limits{maxSize: maxSize})
			lim.disk = func(string) (uint64, uint64, error) { return 50 << 30, 100 << 30, nil }
			empty, err := ob.size()
			if err != nil {
				t.Fatal(err)
			}
			payload := []byte(`{"b":"` + strings.Repeat("z", size-8) + `"}`)
			for range queued {
				if err := ob.insert(newEventID(clk.now()), "event", payload, clk.now()); err != nil {
					t.Fatal(err)
				}
				clk.advance(time.Millisecond)
			}
			before, err := ob.size()
			if err != nil {
				t.Fatal(err)
			}
			// What one event takes on disk, its index entries and page
			// slack included, and what the outbox takes with none.
			perEvent := (before.used - empty.used) / queued
			for range 100 {
				if _, more := lim.enforce(ob, true); !more {
					break
				}
			}
			after, err := ob.size()
			if err != nil {
				t.Fatal(err)
			}
			c, err := ob.counts()
			if err != nil {
				t.Fatal(err)
			}
			gaps := gapsInOutbox(t, ob)
			kept := c.Pending - int64(len(gaps))
			checkAccounting(t, queued, kept, c.Dead, gaps)
			floor := int64(maxSize) - maxSize/50 - perEvent
			if after.used > maxSize || after.used < floor {
				t.Errorf("after eviction the outbox uses %d bytes, want %d..%d (what fits, within 2 %% and one event of %d bytes under max_size)",
					after.used, floor, maxSize, perEvent)
			}
			// A trimmed B-tree keeps what a fresh one of the same rows
			// would not: an interior level and a partly filled edge page in
			// the table and each of its two indexes, six pages at most.
			if fit := (floor - empty.used - 6*4096) / perEvent; kept < fit {
				t.Errorf("kept %d events of %d bytes on disk each, want at least %d (%d bytes in all, 2 %% and one event under max_size, less the pages of a trimmed tree)", kept, perEvent, fit, floor)
			}
			t.Logf("kept %d events (%d bytes each on disk), %d bytes used of %d, %d gaps", kept, perEvent, after.used, maxSize, len(gaps))
		})
	}
}
