package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The outbox benchmarks report their figure with b.ReportMetric, each
// beside a baseline measured in the same run and interleaved with it, so
// that the ratio holds on a busy machine where absolute numbers do not.
// bench/run.sh runs them and checks the ratios against the targets that
// BENCHMARKS.md lists; no test asserts a timing.

// benchPayload is a typical hook event: a few hundred bytes of JSON.
var benchPayload = []byte(`{"session_id":"6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162","hook_event_name":"PostToolUse",` +
	`"tool_name":"Bash","tool_input":{"command":"go test ./...","description":"Run the tests"},` +
	`"tool_response":{"stdout":"ok  \tgithub.com/difflore/difflore\t0.135s\n","stderr":"","interrupted":false},` +
	`"cwd":"/home/dev/src/difflore","transcript_path":"/home/dev/.claude/projects/difflore/6f1c2a9e.jsonl"}`)

// newBenchOutbox opens a fresh outbox in a temporary home.
func newBenchOutbox(b *testing.B) (*outbox, home) {
	b.Helper()
	h := home{dir: b.TempDir()}
	ob, err := openOutbox(h, 5*time.Second, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ob.Close() })
	return ob, h
}

// benchIDs makes unique event ids across one benchmark run.
type benchIDs struct{ n int }

func (g *benchIDs) next() string { g.n++; return "e" + strconv.Itoa(g.n) }

// fill queues n events in one transaction.
func fill(b *testing.B, ob *outbox, ids *benchIDs, n int) {
	b.Helper()
	now := time.Now()
	err := ob.immediate(func() error {
		for range n {
			if err := ob.insert(ids.next(), "event", benchPayload, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// drainRaw claims and deletes every ready event, batch events at a time, and
// reports how many it took: the raw claim + delete rate that delivery is
// measured against.
func drainRaw(b *testing.B, ob *outbox, batch int) int {
	b.Helper()
	n := 0
	for {
		token, events, err := ob.claim(batch, maxBatchBytes, claimLease)
		if err != nil {
			b.Fatal(err)
		}
		if len(events) == 0 {
			return n
		}
		if err := ob.ack(token, events); err != nil {
			b.Fatal(err)
		}
		n += len(events)
	}
}

// floorInsert is the least an enqueue can do in a fresh connection: open,
// set the durability, insert one row, close. It is the in-process baseline for enqueueDB.
func floorInsert(path, id string, payload []byte, created time.Time) error {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetBusyTimeout(enqueueBusy)
	// The same durability as enqueue: in WAL mode, no fsync per commit.
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA synchronous = NORMAL", nil); err != nil {
		return err
	}
	return insertEvent(conn, id, "event", payload, created)
}

// benchGetenv is the environment of a hook that has a TRACEPARENT.
func benchGetenv(key string) string {
	if key == "TRACEPARENT" {
		return "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	}
	return ""
}

// benchKiroGetenv is the environment of Kiro's Prompt Submit hook.
func benchKiroGetenv(key string) string {
	if key == "USER_PROMPT" {
		return "Rename main to run and keep the tests green"
	}
	return ""
}

// BenchmarkEnqueue measures enqueue's work in process, a fresh connection
// per event and the wake-up of a listening daemon as the CLI does
// (events/s; wake-us is the wake-up alone), with a TRACEPARENT kept
// (enqueue.go), beside floorInsert, and
// inserting on a connection that stays open (conn-events/s). The
// whole-process figure, with the Go runtime start, is bench/run.sh's.
// benchStampedPayload is Copilot CLI's PascalCase UserPromptSubmit
// (testdata/hosts), a payload stamped for each firing.
var benchStampedPayload = []byte(`{"hook_event_name":"UserPromptSubmit","session_id":"00232d52-f18e-44c9-9c65-198ae4b61867","timestamp":"2026-12-07T13:10:07.408Z","cwd":"/home/dev/project","prompt":"hi"}`)

func BenchmarkEnqueue(b *testing.B) {
	ob, h := newBenchOutbox(b)
	path := h.path(dbFileName)
	w, err := listenWake(h)
	if err != nil {
		b.Fatal(err)
	}
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() { // Takes the wake-ups as a daemon does.
		defer close(done)
		for !stopped.Load() {
			if _, err := w.wait(time.Hour); err != nil {
				return
			}
		}
	}()
	defer func() {
		stopped.Store(true)
		w.poke()
		<-done
		w.release()
	}()
	var ids benchIDs
	var tEnq, tFloor, tConn, tWake, tAttr, tEnv time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		// As a hook of Claude Code with its tracing on: a TRACEPARENT
		// read from the environment and kept with the event.
		tp := hookTraceparent(benchGetenv)
		if err := enqueueDBTP(path, enqueueBusy, ids.next(), "event", benchPayload, t0, tp); err != nil {
			b.Fatal(err)
		}
		tw := time.Now()
		wakeDaemon(h)
		t1 := time.Now()
		tWake += t1.Sub(tw)
		if err := floorInsert(path, ids.next(), benchPayload, t1); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := ob.insert(ids.next(), "event", benchPayload, t2); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tEnq, tFloor, tConn = tEnq+t1.Sub(t0), tFloor+t2.Sub(t1), tConn+t3.Sub(t2)
		// What enqueue adds before the insert to name the host and key
		// the firing, on a stamped payload (the slow path: the host
		// process is looked up and the payload hashed).
		attributeFiring("claude.UserPromptSubmit", "", benchStampedPayload, false)
		t4 := time.Now()
		tAttr += t4.Sub(t3)
		// What 'enqueue --env' (Kiro's hooks) adds before the insert: the
		// payload built from the environment, the host process looked up
		// for its session_id.
		envPayload(benchKiroGetenv, kiroEnv)
		tEnv += time.Since(t4)
		n++
	}
	b.ReportMetric(float64(tAttr.Microseconds())/float64(n), "attribute-us")
	b.ReportMetric(float64(tEnv.Microseconds())/float64(n), "env-us")
	b.ReportMetric(tEnv.Seconds()/tEnq.Seconds(), "x-env")
	b.ReportMetric(tAttr.Seconds()/tEnq.Seconds(), "x-attribute")
	b.ReportMetric(float64(n)/tEnq.Seconds(), "events/s")
	b.ReportMetric(float64(n)/tFloor.Seconds(), "floor-events/s")
	b.ReportMetric(tEnq.Seconds()/tFloor.Seconds(), "x-floor")
	b.ReportMetric(float64(n)/tConn.Seconds(), "conn-events/s")
	b.ReportMetric(float64(tWake.Microseconds())/float64(n), "wake-us")
}

// BenchmarkEnqueueAtLimit measures enqueueDB on an outbox at its max_size
// (4 MiB), with a daemon's limiter evicting from it in the background (every
// 10 ms, a hundred times as often as the daemon does), beside enqueueDB on
// an outbox far below its limit, interleaved: x-below is the ratio of the
// times (target ≤ 1.2).
func BenchmarkEnqueueAtLimit(b *testing.B) {
	_, below := newBenchOutbox(b)
	full, fullHome := newBenchOutbox(b)
	var ids benchIDs
	fill(b, full, &ids, 4<<20/len(benchPayload)*2)
	lim := newLimiter(limits{maxSize: 4 << 20}, fullHome, time.Now, slog.New(slog.DiscardHandler))
	for _, more := lim.enforce(full, true); more; _, more = lim.enforce(full, true) {
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		runs := 0
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- runs
				return
			case <-t.C:
				if evicted, _ := lim.enforce(full, false); evicted {
					runs++
				}
			}
		}
	}()
	paths := []string{below.path(dbFileName), fullHome.path(dbFileName)}
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for i, p := range paths {
			t0 := time.Now()
			if err := enqueueDB(p, enqueueBusy, ids.next(), "event", benchPayload, t0); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(t0)
		}
		n++
	}
	close(stop)
	runs := <-done
	b.ReportMetric(float64(n)/took[1].Seconds(), "limit-events/s")
	b.ReportMetric(float64(n)/took[0].Seconds(), "below-events/s")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "x-below")
	b.ReportMetric(float64(runs), "evictions")
}

// enqueueFull is enqueueDB with synchronous=FULL: in WAL mode every commit
// then waits for an fsync of the WAL, so that an accepted event survives a
// power loss too, not only a crash of the process or the OS's own restart.
func enqueueFull(path, id string, payload []byte, created time.Time) error {
	conn, err := openConn(path, enqueueBusy)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn.Conn, "PRAGMA synchronous = FULL", nil); err != nil {
		return err
	}
	if err := migrate(conn.Conn); err != nil {
		return err
	}
	return insertEvent(conn.Conn, id, "event", payload, created)
}

// BenchmarkEnqueueDurability measures what synchronous=FULL would cost on
// the hook path: enqueue's database work in a fresh connection per event,
// as today (synchronous=NORMAL, normal-us/event) and with FULL
// (full-us/event), interleaved in the same run on the same outbox, with a
// daemon's connection held open as in real use (so that closing an enqueue
// connection never checkpoints). full-extra-us is what FULL adds to each
// hook; x-normal is the ratio of the two.
func BenchmarkEnqueueDurability(b *testing.B) {
	_, h := newBenchOutbox(b)
	path := h.path(dbFileName)
	var ids benchIDs
	var tNormal, tFull time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		if err := enqueueDB(path, enqueueBusy, ids.next(), "event", benchPayload, t0); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := enqueueFull(path, ids.next(), benchPayload, t1); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tNormal, tFull = tNormal+t1.Sub(t0), tFull+t2.Sub(t1)
		n++
	}
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.ReportMetric(perEvent(tNormal), "normal-us/event")
	b.ReportMetric(perEvent(tFull), "full-us/event")
	b.ReportMetric(perEvent(tFull-tNormal), "full-extra-us")
	b.ReportMetric(tFull.Seconds()/tNormal.Seconds(), "x-normal")
}

// BenchmarkClaimAck measures the raw claim + acknowledge rate in batches of
// defaultBatch (events/s).
func BenchmarkClaimAck(b *testing.B) {
	ob, _ := newBenchOutbox(b)
	var ids benchIDs
	var took time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		fill(b, ob, &ids, 10*defaultBatch)
		b.StartTimer()
		t0 := time.Now()
		n += drainRaw(b, ob, defaultBatch)
		took += time.Since(t0)
	}
	b.ReportMetric(float64(n)/took.Seconds(), "events/s")
}

// BenchmarkEnqueueClaimAck moves one event at a time through the whole
// queue: insert, claim, acknowledge (msgs/s, and process-cpu-µs/msg: the
// whole test process's user + system CPU time over the loop, divided by
// the messages, which a loaded machine disturbs less; it counts the
// runtime's own work, the garbage collector's included). bench/run.sh sets it
// beside goqite's send → receive → delete (bench/peer) in the same run.
func BenchmarkEnqueueClaimAck(b *testing.B) {
	ob, _ := newBenchOutbox(b)
	var ids benchIDs
	cpu0 := processCPU()
	for b.Loop() {
		if err := ob.insert(ids.next(), "event", benchPayload, time.Now()); err != nil {
			b.Fatal(err)
		}
		token, events, err := ob.claim(1, maxBatchBytes, claimLease)
		if err != nil || len(events) != 1 {
			b.Fatalf("claim: %d events, %v", len(events), err)
		}
		if err := ob.ack(token, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	cpu := processCPU() - cpu0
	if cpu <= 0 {
		b.Fatal("the process's CPU time could not be read")
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "process-cpu-µs/msg")
}

// bigOutboxes caches, for one test binary run, outbox files holding a given
// number of pending events: building the million takes seconds, so it
// happens once, inside the benchmark that needs it, and never under plain
// 'go test'. benchCacheM removes them when the run ends.
var bigOutboxes struct {
	sync.Mutex
	dir   string
	paths map[int]string
}

// queuedOutbox returns the path of a cached outbox with n pending events.
func queuedOutbox(b *testing.B, n int) string {
	b.Helper()
	bigOutboxes.Lock()
	defer bigOutboxes.Unlock()
	if p, ok := bigOutboxes.paths[n]; ok {
		return p
	}
	if bigOutboxes.dir == "" {
		dir, err := os.MkdirTemp("", "difflore-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bigOutboxes.dir, bigOutboxes.paths = dir, map[int]string{}
	}
	h := home{dir: filepath.Join(bigOutboxes.dir, strconv.Itoa(n))}
	if err := os.Mkdir(h.dir, 0o700); err != nil {
		b.Fatal(err)
	}
	ob, err := openOutbox(h, 5*time.Second, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	// One statement in SQLite itself: a Go loop of a million inserts would
	// take most of a minute.
	const fillSQL = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n)
INSERT INTO events (id, kind, payload, created_at, available_at)
SELECT 'q' || x, 'event', :payload, :t + x, :t + x FROM c`
	t := time.Now().Add(-time.Hour).UnixMilli()
	err = sqlitex.Execute(ob.conn, fillSQL, &sqlitex.ExecOptions{
		Named: map[string]any{":n": n, ":payload": benchPayload, ":t": t},
	})
	if err != nil {
		b.Fatalf("fill %d events: %v", n, err)
	}
	p := h.path(dbFileName)
	bigOutboxes.paths[n] = p
	return p
}

// removeBenchCache deletes the cached outboxes.
func removeBenchCache() {
	bigOutboxes.Lock()
	defer bigOutboxes.Unlock()
	if bigOutboxes.dir != "" {
		os.RemoveAll(bigOutboxes.dir)
	}
}

// benchCacheM runs the tests and benchmarks, then removes what the
// benchmarks cached, whatever the exit code.
type benchCacheM struct{ *testing.M }

func (m benchCacheM) Run() int {
	defer removeBenchCache()
	return m.M.Run()
}

// BenchmarkClaimLatency measures one claim of defaultBatch events with a
// thousand and with a million events queued, alternating between the two
// outboxes, and reports both medians and their ratio (x-1k, target ≤ 1.5).
// Each claim is given back, uncounted, outside the timing.
func BenchmarkClaimLatency(b *testing.B) {
	sizes := []int{1_000, 1_000_000}
	obs := make([]*outbox, len(sizes))
	for i, n := range sizes {
		ob, err := openOutbox(home{dir: filepath.Dir(queuedOutbox(b, n))}, 5*time.Second, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		defer ob.Close()
		obs[i] = ob
	}
	took := make([][]time.Duration, len(sizes))
	for b.Loop() {
		for i, ob := range obs {
			t0 := time.Now()
			token, events, err := ob.claim(defaultBatch, maxBatchBytes, claimLease)
			took[i] = append(took[i], time.Since(t0))
			if err != nil || len(events) != defaultBatch {
				b.Fatalf("claim: %d events, %v", len(events), err)
			}
			b.StopTimer()
			if err := ob.release(token, events, time.Now(), false, ""); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	p1k, p1m := median(took[0]), median(took[1])
	b.ReportMetric(float64(p1k.Microseconds()), "µs-claim@1k")
	b.ReportMetric(float64(p1m.Microseconds()), "µs-claim@1M")
	b.ReportMetric(p1m.Seconds()/p1k.Seconds(), "x-1k")
}

// BenchmarkStatus measures status's outbox query (the counts, the oldest
// pending event, the size and the meta keys, on an open connection) with a
// thousand and with a million events queued, alternating, and reports both
// medians and their ratio (x-1k, target ≤ 2); open-x-1k is the same for
// all status does with the outbox, its own connection included. scan-µs@1M
// is the median of five runs of the count by scan that status used before
// the tally, on the million.
func BenchmarkStatus(b *testing.B) {
	sizes := []int{1_000, 1_000_000}
	homes := make([]home, len(sizes))
	obs := make([]*outbox, len(sizes))
	for i, n := range sizes {
		homes[i] = home{dir: filepath.Dir(queuedOutbox(b, n))}
		obs[i] = mustOutbox(b, homes[i], time.Now)
		defer obs[i].Close()
	}
	query := func(ob *outbox) {
		c, err := ob.counts()
		if err != nil || c.Pending == 0 {
			b.Fatalf("counts %+v, %v", c, err)
		}
		m, err := ob.meta()
		if err != nil {
			b.Fatal(err)
		}
		var st storeStatus
		if err := fillStoreStatus(ob, m, &st); err != nil {
			b.Fatal(err)
		}
	}
	took := make([][]time.Duration, len(sizes))
	opened := make([][]time.Duration, len(sizes))
	for b.Loop() {
		for i, ob := range obs {
			t0 := time.Now()
			query(ob)
			t1 := time.Now()
			var rep statusReport
			if err := fillOutboxStatus(homes[i], &rep); err != nil || rep.Outbox.Pending != int64(sizes[i]) {
				b.Fatalf("status: %d pending, %v", rep.Outbox.Pending, err)
			}
			took[i] = append(took[i], t1.Sub(t0))
			opened[i] = append(opened[i], time.Since(t1))
		}
	}
	b.StopTimer()
	var scans []time.Duration
	for range 5 {
		t0 := time.Now()
		if err := sqlitex.Execute(obs[1].conn, `SELECT state, count(*), min(created_at) FROM events GROUP BY state`, nil); err != nil {
			b.Fatal(err)
		}
		scans = append(scans, time.Since(t0))
	}
	scan := median(scans)
	p1k, p1m := median(took[0]), median(took[1])
	b.ReportMetric(float64(p1k.Microseconds()), "µs-status@1k")
	b.ReportMetric(float64(p1m.Microseconds()), "µs-status@1M")
	b.ReportMetric(p1m.Seconds()/p1k.Seconds(), "x-1k")
	b.ReportMetric(median(opened[1]).Seconds()/median(opened[0]).Seconds(), "open-x-1k")
	b.ReportMetric(float64(scan.Microseconds()), "scan-µs@1M")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
