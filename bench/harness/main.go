// Command harness measures difflore as whole processes, for bench/run.sh:
// each figure beside a baseline measured in the same run, interleaved with
// it where that makes sense, so that the ratio holds on a busy machine. It
// prints one row per figure, tab-separated after "ROW":
//
//	ROW  figure  value  baseline  ratio  target  pass
//
// and its observations on stderr. Every server it starts listens on
// loopback only; every child it starts gets a temporary DIFFLORE_HOME and
// is stopped or killed before it returns.
//
// Usage:
//
//	harness enqueue  -difflore BIN -floor BIN [-runs N]
//	harness latency  -difflore BIN [-n N]
//	harness idlecpu  -difflore BIN [-secs S]
//	harness idlewake -difflore BIN [-secs S]
//	harness stop     -difflore BIN [-n N]
//	harness status   -difflore BIN [-runs N]
//	harness drain1m  -difflore BIN [-events N]
//	harness gobench  FILE
//	harness peer     GOBENCH-FILE PEER-FILE
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// payload is a typical hook event, the same as the Go benchmarks'.
const payload = `{"session_id":"6f1c2a9e-3b0d-4c55-9a51-1d2e3f405162","hook_event_name":"PostToolUse",` +
	`"tool_name":"Bash","tool_input":{"command":"go test ./...","description":"Run the tests"},` +
	`"tool_response":{"stdout":"ok  \tgithub.com/difflore/difflore\t0.135s\n","stderr":"","interrupted":false},` +
	`"cwd":"/home/dev/src/difflore","transcript_path":"/home/dev/.claude/projects/difflore/6f1c2a9e.jsonl"}`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: harness enqueue|latency|idlecpu|idlewake|stop|status|drain1m|gobench|peer …")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"enqueue": cmdEnqueue, "latency": cmdLatency, "idlecpu": cmdIdleCPU, "stop": cmdStop,
		"status": cmdStatus, "drain1m": cmdDrain1M, "gobench": cmdGoBench, "peer": cmdPeer,
		"ticker": cmdTicker, "idlewake": cmdIdleWake, "block": cmdBlock,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "harness: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "harness %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// row prints one figure of the table. A target of "" means the figure is
// reported for information only.
func row(figure, value, baseline, ratio, target string, pass bool) {
	verdict := "pass"
	switch {
	case target == "":
		target, verdict = "-", "info"
	case !pass:
		verdict = "FAIL"
	}
	fmt.Printf("ROW\t%s\t%s\t%s\t%s\t%s\t%s\n", figure, value, baseline, ratio, target, verdict)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// tempHome makes a data home for one measurement, removed by cleanup.
func tempHome() (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "difflore-harness-")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, "home"), func() { os.RemoveAll(dir) }, nil
}

// command is bin args… with DIFFLORE_HOME set to home and no endpoint or
// token from the caller's environment.
func command(home, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	env := []string{"DIFFLORE_HOME=" + home}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DIFFLORE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
}

// timeRun runs cmd to completion and returns how long it took.
func timeRun(cmd *exec.Cmd) (time.Duration, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	return d, nil
}

// cmdEnqueue times 'difflore enqueue' against the floor program and the
// sqlite3 command-line insert, round-robin so that each round sees the same
// machine load, and 'difflore version' as the cost of starting difflore.
func cmdEnqueue(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	floor := fs.String("floor", "", "floor binary")
	sqlite3 := fs.String("sqlite3", "sqlite3", "sqlite3 command-line shell")
	runs := fs.Int("runs", 300, "runs of each command")
	fs.Parse(args)
	h1, clean1, err := tempHome()
	if err != nil {
		return err
	}
	defer clean1()
	h2, clean2, err := tempHome()
	if err != nil {
		return err
	}
	defer clean2()
	h3, clean3, err := tempHome()
	if err != nil {
		return err
	}
	defer clean3()
	// Every outbox is made by difflore, so all three insert into the same
	// schema and indexes.
	for _, h := range []string{h1, h2, h3} {
		if _, err := timeRun(command(h, *bin, "enqueue", payload)); err != nil {
			return err
		}
	}
	floorDB := filepath.Join(h2, "outbox.db")
	cliDB := filepath.Join(h3, "outbox.db")
	n := 0
	cliSQL := func() string {
		n++
		return fmt.Sprintf(`PRAGMA synchronous = NORMAL; INSERT INTO events (id, kind, payload, created_at, available_at) VALUES ('c%d', 'event', CAST('%s' AS BLOB), %d, %d);`,
			n, payload, time.Now().UnixMilli(), time.Now().UnixMilli())
	}
	names := []string{"enqueue", "floor", "sqlite3", "version"}
	mk := []func() *exec.Cmd{
		func() *exec.Cmd { return command(h1, *bin, "enqueue", payload) },
		func() *exec.Cmd { return command(h1, *floor, floorDB, payload) },
		func() *exec.Cmd { return command(h1, *sqlite3, cliDB, cliSQL()) },
		func() *exec.Cmd { return command(h1, *bin, "version") },
	}
	took := make([][]time.Duration, len(names))
	for r := -10; r < *runs; r++ { // ten warm-up rounds
		for i := range names {
			j := (i + r + 10) % len(names) // rotate the order every round
			d, err := timeRun(mk[j]())
			if err != nil {
				return err
			}
			if r >= 0 {
				took[j] = append(took[j], d)
			}
		}
	}
	for i, name := range names {
		fmt.Fprintf(os.Stderr, "%-8s median %s  p90 %s  min %s  (%d runs)\n", name,
			ms(median(took[i])), ms(percentile(took[i], 90)), ms(percentile(took[i], 0)), len(took[i]))
	}
	enq, fl, cli := median(took[0]), median(took[1]), median(took[2])
	ratio := float64(enq) / float64(fl)
	row("enqueue whole process, median", ms(enq), "floor "+ms(fl), fmt.Sprintf("%.3f", ratio), "≤ 1.15", ratio <= 1.15)
	row("enqueue vs sqlite3 CLI insert, median", ms(enq), "sqlite3 "+ms(cli), fmt.Sprintf("%.3f", float64(enq)/float64(cli)), "", true)
	row("difflore version (process start), median", ms(median(took[3])), "floor "+ms(fl),
		fmt.Sprintf("%.3f", float64(median(took[3]))/float64(fl)), "", true)
	return nil
}

// endpoint is a loopback ingest endpoint that counts the events it gets and
// tells waiters when a given event id arrives.
type endpoint struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	events  int64
	waiters map[string]chan time.Time
}

var idRE = regexp.MustCompile(`"id":"([^"]+)"`)

func newEndpoint() (*endpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &endpoint{url: "http://" + ln.Addr().String() + "/ingest", waiters: map[string]chan time.Time{}}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(ln)
	return e, nil
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := bytes.Count(b, []byte(`,"attempt":`))
	e.mu.Lock()
	e.events += int64(n)
	if len(e.waiters) > 0 {
		for _, m := range idRE.FindAllSubmatch(b, -1) {
			if c, ok := e.waiters[string(m[1])]; ok {
				c <- now
				delete(e.waiters, string(m[1]))
			}
		}
	}
	e.mu.Unlock()
}

func (e *endpoint) wait(id string) chan time.Time {
	c := make(chan time.Time, 1)
	e.mu.Lock()
	e.waiters[id] = c
	e.mu.Unlock()
	return c
}

func (e *endpoint) count() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.events
}

func (e *endpoint) close() { e.srv.Close() }

// daemon is a foreground 'difflore run' started by the harness.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

// idleDaemon starts difflore's daemon on a fresh home, draining to a fresh
// loopback endpoint, with extra flags if any; stop ends all three.
func idleDaemon(bin string, flags ...string) (home string, ep *endpoint, d *daemon, stop func(), err error) {
	h, clean, err := tempHome()
	if err != nil {
		return "", nil, nil, nil, err
	}
	ep, err = newEndpoint()
	if err != nil {
		clean()
		return "", nil, nil, nil, err
	}
	d, err = startDaemon(bin, h, ep.url, flags...)
	if err != nil {
		ep.close()
		clean()
		return "", nil, nil, nil, err
	}
	return h, ep, d, func() { d.stop(); ep.close(); clean() }, nil
}

// startDaemon starts 'difflore run --endpoint url flags…' in home and waits
// for its ready line.
func startDaemon(bin, home, url string, flags ...string) (*daemon, error) {
	cmd := command(home, bin, append([]string{"run", "--endpoint", url}, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		first := true
		for sc.Scan() {
			if first && strings.Contains(sc.Text(), "daemon ready") {
				first = false
				close(ready)
			}
			if strings.Contains(sc.Text(), "level=ERROR") || strings.Contains(sc.Text(), "level=WARN") {
				fmt.Fprintln(os.Stderr, "daemon:", sc.Text())
			}
		}
		cmd.Wait()
		close(d.done)
	}()
	select {
	case <-ready:
		return d, nil
	case <-d.done:
		return nil, fmt.Errorf("daemon exited before ready: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("daemon not ready after 30s")
	}
}

// stop ends the daemon with SIGINT (a kill after 15 s). It may be called
// again once the daemon has exited.
func (d *daemon) stop() {
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// cmdLatency measures enqueue → endpoint on an idle daemon: from the start
// of 'difflore enqueue' to the endpoint reading the event, with an idle
// pause between events. The baseline is the enqueue process itself.
func cmdLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	n := fs.Int("n", 200, "events")
	fs.Parse(args)
	h, ep, _, stop, err := idleDaemon(*bin)
	if err != nil {
		return err
	}
	defer stop()
	var lat, proc []time.Duration
	for i := range *n {
		time.Sleep(time.Duration(100+i*37%200) * time.Millisecond) // idle, at varying phases of the tick
		id := fmt.Sprintf("lat-%d", i)
		got := ep.wait(id)
		t0 := time.Now()
		dp, err := timeRun(command(h, *bin, "enqueue", "--id", id, payload))
		if err != nil {
			return err
		}
		select {
		case t := <-got:
			lat, proc = append(lat, t.Sub(t0)), append(proc, dp)
		case <-time.After(10 * time.Second):
			return fmt.Errorf("event %s not delivered after 10s", id)
		}
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	fmt.Fprintf(os.Stderr, "enqueue→endpoint: p50 %s  p90 %s  p99 %s  max %s  (%d events); enqueue process p50 %s\n",
		ms(p50), ms(percentile(lat, 90)), ms(p99), ms(percentile(lat, 100)), len(lat), ms(median(proc)))
	row("enqueue→endpoint latency p50, idle daemon", ms(p50), "enqueue process "+ms(median(proc)), fmt.Sprintf("%.2f", float64(p50)/float64(median(proc))), "≤ 100 ms", p50 <= 100*time.Millisecond)
	row("enqueue→endpoint latency p99, idle daemon", ms(p99), "enqueue process "+ms(percentile(proc, 99)), fmt.Sprintf("%.2f", float64(p99)/float64(percentile(proc, 99))), "", true)
	return nil
}

// cpuTicks is a process's user + system time in clock ticks (USER_HZ,
// 100 per second on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, nil
}

// cmdTicker is the idle baseline: a Go process that wakes on a ticker and
// does nothing else, as an idle daemon wakes to look for new events.
func cmdTicker(args []string) error {
	fs := flag.NewFlagSet("ticker", flag.ExitOnError)
	tick := fs.Duration("tick", 75*time.Millisecond, "tick")
	secs := fs.Int("secs", 60, "seconds before it exits by itself")
	fs.Parse(args)
	t := time.NewTicker(*tick)
	end := time.After(time.Duration(*secs) * time.Second)
	for {
		select {
		case <-t.C:
		case <-end:
			return nil
		}
	}
}

// cmdIdleCPU measures an idle daemon's CPU use over secs seconds, beside a
// Go process that only wakes on a 75 ms ticker (the daemon's poll before
// enqueue woke it) over the same seconds.
func cmdIdleCPU(args []string) error {
	fs := flag.NewFlagSet("idlecpu", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	secs := fs.Int("secs", 30, "seconds")
	fs.Parse(args)
	_, _, d, stop, err := idleDaemon(*bin)
	if err != nil {
		return err
	}
	defer stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	base := exec.Command(self, "ticker", "-secs", strconv.Itoa(*secs+10))
	if err := base.Start(); err != nil {
		return err
	}
	defer func() { base.Process.Kill(); base.Wait() }()
	time.Sleep(2 * time.Second) // past start-up
	pid := d.cmd.Process.Pid
	t0, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	b0, err := cpuTicks(base.Process.Pid)
	if err != nil {
		return err
	}
	w0 := time.Now()
	time.Sleep(time.Duration(*secs) * time.Second)
	t1, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	b1, err := cpuTicks(base.Process.Pid)
	if err != nil {
		return err
	}
	wall := time.Since(w0).Seconds()
	pct := float64(t1-t0) / 100 / wall * 100
	basePct := float64(b1-b0) / 100 / wall * 100
	ratio := "-"
	if b1 > b0 {
		ratio = fmt.Sprintf("%.2f", float64(t1-t0)/float64(b1-b0))
	}
	fmt.Fprintf(os.Stderr, "idle daemon: %d ticks of CPU in %.1f s; a bare 75 ms ticker: %d\n", t1-t0, wall, b1-b0)
	row(fmt.Sprintf("idle daemon CPU over %d s", *secs), fmt.Sprintf("%.3f %%", pct), fmt.Sprintf("bare 75 ms Go ticker %.3f %%", basePct), ratio, "≤ 0.5 %", pct <= 0.5)
	return nil
}

// ctxSwitches is a process's voluntary context switches, summed over its
// threads: /proc/PID/status counts only the main thread, and a Go program
// wakes in whichever thread the runtime has at hand.
func ctxSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of pid %d: %v", pid, err)
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // A thread that ended meanwhile.
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n, nil
}

// cmdBlock is the idle wake-up baseline: a Go process that only blocks, on
// one timer that ends it.
func cmdBlock(args []string) error {
	fs := flag.NewFlagSet("block", flag.ExitOnError)
	secs := fs.Int("secs", 60, "seconds before it exits by itself")
	fs.Parse(args)
	time.Sleep(time.Duration(*secs) * time.Second)
	return nil
}

// cmdIdleWake counts the voluntary context switches (how often it went to
// sleep, so how often something woke it) of two idle daemons over secs
// seconds, beside a bare Go process that only blocks, all over the same
// seconds, and reports them per 60 s: one daemon with the default --tick
// (an hour; the default secs is one whole tick, so its safety-net look is
// in the count as often as it comes) or the one -tick gives, one with
// --tick 24h (none comes, so what is counted is what else wakes it).
func cmdIdleWake(args []string) error {
	fs := flag.NewFlagSet("idlewake", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	secs := fs.Int("secs", 3600, "seconds")
	tick := fs.String("tick", "", "--tick for the first daemon (its default when empty)")
	fs.Parse(args)
	var flags []string
	if *tick != "" {
		flags = []string{"--tick", *tick}
	}
	_, _, dflt, stop, err := idleDaemon(*bin, flags...)
	if err != nil {
		return err
	}
	defer stop()
	_, _, long, stopLong, err := idleDaemon(*bin, "--tick", "24h")
	if err != nil {
		return err
	}
	defer stopLong()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	base := exec.Command(self, "block", "-secs", strconv.Itoa(*secs+10))
	if err := base.Start(); err != nil {
		return err
	}
	defer func() { base.Process.Kill(); base.Wait() }()
	time.Sleep(2 * time.Second) // past start-up
	pids := []int{dflt.cmd.Process.Pid, long.cmd.Process.Pid, base.Process.Pid}
	var start [3]int64
	for i, pid := range pids {
		if start[i], err = ctxSwitches(pid); err != nil {
			return err
		}
	}
	time.Sleep(time.Duration(*secs) * time.Second)
	var perMin [3]float64
	for i, pid := range pids {
		end, err := ctxSwitches(pid)
		if err != nil {
			return err
		}
		perMin[i] = float64(end-start[i]) * 60 / float64(*secs)
	}
	which := "default --tick"
	if *tick != "" {
		which = "--tick " + *tick
	}
	fmt.Fprintf(os.Stderr, "voluntary context switches per 60 s, over %d s: idle daemon, %s %.1f; --tick 24h %.1f; a bare Go process that blocks %.1f\n",
		*secs, which, perMin[0], perMin[1], perMin[2])
	// The target allows 4 when the bare process switched less than twice
	// a minute: twice nothing would fail any daemon.
	bare := fmt.Sprintf("bare Go process that blocks %.1f", perMin[2])
	limit := max(2*perMin[2], 4)
	ratio := func(a float64) string {
		if perMin[2] == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/perMin[2])
	}
	row(fmt.Sprintf("idle daemon voluntary context switches per 60 s (over %d s), %s", *secs, which), fmt.Sprintf("%.1f", perMin[0]),
		bare, ratio(perMin[0]), "≤ 2 × bare", perMin[0] <= limit)
	row(fmt.Sprintf("the same with --tick 24h (no safety-net look in the %d s)", *secs), fmt.Sprintf("%.1f", perMin[1]),
		bare, ratio(perMin[1]), "≤ 2 × bare", perMin[1] <= limit)
	return nil
}

// cmdStop times 'difflore stop' of an idle detached daemon, n times, beside
// 'difflore version' (the cost of starting difflore at all), interleaved.
func cmdStop(args []string) error {
	fs := flag.NewFlagSet("stop", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	n := fs.Int("n", 20, "stops")
	fs.Parse(args)
	h, clean, err := tempHome()
	if err != nil {
		return err
	}
	defer clean()
	ep, err := newEndpoint()
	if err != nil {
		return err
	}
	defer ep.close()
	var stops, versions []time.Duration
	for range *n {
		if _, err := timeRun(command(h, *bin, "run", "--detach", "--endpoint", ep.url)); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // idle
		dv, err := timeRun(command(h, *bin, "version"))
		if err != nil {
			return err
		}
		cmd := command(h, *bin, "stop")
		var out bytes.Buffer
		cmd.Stdout = &out
		ds, err := timeRun(cmd)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(out.String(), "stopped") {
			return fmt.Errorf("stop said %q", out.String())
		}
		stops, versions = append(stops, ds), append(versions, dv)
	}
	med, base := median(stops), median(versions)
	fmt.Fprintf(os.Stderr, "stop: median %s  p90 %s  max %s; version median %s\n", ms(med), ms(percentile(stops, 90)), ms(percentile(stops, 100)), ms(base))
	row("stop of an idle daemon, median", ms(med), "version "+ms(base), fmt.Sprintf("%.2f", float64(med)/float64(base)), "≤ 50 ms", med <= 50*time.Millisecond)
	return nil
}

// cmdStatus times 'difflore status' with an idle daemon running, beside
// 'difflore version', interleaved.
func cmdStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	runs := fs.Int("runs", 100, "runs")
	fs.Parse(args)
	h, _, _, stop, err := idleDaemon(*bin)
	if err != nil {
		return err
	}
	defer stop()
	if _, err := timeRun(command(h, *bin, "enqueue", payload)); err != nil {
		return err
	}
	var st, ver []time.Duration
	for range *runs {
		ds, err := timeRun(command(h, *bin, "status"))
		if err != nil {
			return err
		}
		dv, err := timeRun(command(h, *bin, "version"))
		if err != nil {
			return err
		}
		st, ver = append(st, ds), append(ver, dv)
	}
	med, base := median(st), median(ver)
	fmt.Fprintf(os.Stderr, "status: median %s  p90 %s; version median %s\n", ms(med), ms(percentile(st, 90)), ms(base))
	row("status with an idle daemon, median", ms(med), "version "+ms(base), fmt.Sprintf("%.2f", float64(med)/float64(base)), "", true)
	return nil
}

// fileSize is the size of the outbox and its WAL.
func fileSize(home string) (db, wal int64) {
	if fi, err := os.Stat(filepath.Join(home, "outbox.db")); err == nil {
		db = fi.Size()
	}
	if fi, err := os.Stat(filepath.Join(home, "outbox.db-wal")); err == nil {
		wal = fi.Size()
	}
	return db, wal
}

// memKiB reads VmRSS and VmHWM (peak RSS) of a process, in KiB.
func memKiB(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

// cmdDrain1M queues a million events (with the sqlite3 shell, into an
// outbox difflore made), then starts the daemon against a loopback
// endpoint and samples its RSS and the file sizes until every event is
// delivered and the file has shrunk back (or two minutes pass).
func cmdDrain1M(args []string) error {
	fs := flag.NewFlagSet("drain1m", flag.ExitOnError)
	bin := fs.String("difflore", "", "difflore binary")
	sqlite3 := fs.String("sqlite3", "sqlite3", "sqlite3 command-line shell")
	events := fs.Int("events", 1_000_000, "events to queue")
	fs.Parse(args)
	h, clean, err := tempHome()
	if err != nil {
		return err
	}
	defer clean()
	if _, err := timeRun(command(h, *bin, "enqueue", "--id", "first", payload)); err != nil {
		return err
	}
	db0, _ := fileSize(h)
	// One millisecond apart, all in the past, so that all are ready now.
	past := time.Now().Add(-time.Hour).UnixMilli() - int64(*events)
	fill := fmt.Sprintf(`PRAGMA synchronous = NORMAL;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
INSERT INTO events (id, kind, payload, created_at, available_at)
SELECT 'q' || x, 'event', CAST('%s' AS BLOB), %d + x, %d + x FROM c;`, *events-1, payload, past, past)
	dfill, err := timeRun(command(h, *sqlite3, filepath.Join(h, "outbox.db"), fill))
	if err != nil {
		return err
	}
	dbFull, walFull := fileSize(h)
	fmt.Fprintf(os.Stderr, "drain1m: queued %d events in %s; outbox %s + wal %s (empty outbox was %s)\n",
		*events, dfill.Round(time.Millisecond), mib(dbFull), mib(walFull), mib(db0))

	ep, err := newEndpoint()
	if err != nil {
		return err
	}
	defer ep.close()
	t0 := time.Now()
	d, err := startDaemon(*bin, h, ep.url)
	if err != nil {
		return err
	}
	defer d.stop()
	pid := d.cmd.Process.Pid
	var maxRSS, maxTotal int64
	var drained time.Duration
	var lastDB, lastWAL int64
	deadline := time.Now().Add(10 * time.Minute)
	stableSince := time.Time{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextReport := time.Now().Add(5 * time.Second)
	for range tick.C {
		rss, _ := memKiB(pid)
		maxRSS = max(maxRSS, rss)
		db, wal := fileSize(h)
		maxTotal = max(maxTotal, db+wal)
		got := ep.count()
		if time.Now().After(nextReport) {
			nextReport = time.Now().Add(5 * time.Second)
			fmt.Fprintf(os.Stderr, "drain1m: %7d delivered, rss %s, outbox %s + wal %s\n", got, mib(rss<<10), mib(db), mib(wal))
		}
		if drained == 0 && got >= int64(*events) {
			drained = time.Since(t0)
			fmt.Fprintf(os.Stderr, "drain1m: all %d delivered after %s (%.0f events/s); outbox %s + wal %s\n",
				got, drained.Round(time.Millisecond), float64(got)/drained.Seconds(), mib(db), mib(wal))
		}
		if drained > 0 {
			if db != lastDB || wal != lastWAL {
				stableSince = time.Now()
			} else if time.Since(stableSince) > 3*time.Second {
				break
			}
			lastDB, lastWAL = db, wal
		}
		if time.Now().After(deadline) {
			break
		}
	}
	_, hwm := memKiB(pid)
	dbEnd, walEnd := fileSize(h)
	d.stop()
	dbStopped, walStopped := fileSize(h)
	fmt.Fprintf(os.Stderr, "drain1m: settled after %s: outbox %s + wal %s; after stop %s + %s; peak rss %s (VmHWM %s)\n",
		time.Since(t0).Round(time.Millisecond), mib(dbEnd), mib(walEnd), mib(dbStopped), mib(walStopped), mib(maxRSS<<10), mib(hwm<<10))
	if drained == 0 {
		return fmt.Errorf("only %d of %d events delivered in 10 minutes", ep.count(), *events)
	}
	peak := max(hwm, maxRSS) << 10
	label := fmt.Sprintf("%d", *events)
	if *events%1_000_000 == 0 {
		label = fmt.Sprintf("%dM", *events/1_000_000)
	}
	row("daemon peak RSS draining "+label+" events (VmHWM)", mib(peak), "-", "-", "≤ 50 MiB", peak <= 50<<20)
	row("drain "+label+" events, whole process", fmt.Sprintf("%.0f events/s", float64(*events)/drained.Seconds()), "-", "-", "", true)
	row("outbox + WAL size: "+label+" queued → drained", mib(dbEnd+walEnd), "full "+mib(dbFull+walFull)+", peak "+mib(maxTotal),
		fmt.Sprintf("%.4f", float64(dbEnd+walEnd)/float64(dbFull+walFull)), "≤ 0.01 × full", float64(dbEnd+walEnd) <= 0.01*float64(dbFull+walFull))
	return nil
}

// goBenchMetrics reads 'go test -bench' output: for each benchmark name
// (without the -N suffix), the list of metric sets, one per run.
func goBenchMetrics(path string) (map[string][]map[string]float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string][]map[string]float64{}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				m[f[i+1]] = v
			}
		}
		out[name] = append(out[name], m)
	}
	return out, nil
}

// medianOf is the median of one metric over the runs of a benchmark.
func medianOf(runs []map[string]float64, metric string) float64 {
	var v []float64
	for _, m := range runs {
		if x, ok := m[metric]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// cmdGoBench turns the Go benchmarks' metrics into rows.
func cmdGoBench(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: harness gobench FILE")
	}
	b, err := goBenchMetrics(args[0])
	if err != nil {
		return err
	}
	if r := b["BenchmarkEnqueue"]; r != nil {
		x := medianOf(r, "x-floor")
		row("in-process enqueueDB (open, check, insert)", fmt.Sprintf("%.0f events/s", medianOf(r, "events/s")),
			fmt.Sprintf("bare open+insert %.0f/s", medianOf(r, "floor-events/s")), fmt.Sprintf("%.3f (time)", x), "", true)
	}
	if r := b["BenchmarkDrain"]; r != nil {
		xr, xs := medianOf(r, "x-raw"), medianOf(r, "x-single")
		row("drain to loopback httptest, gzip, batch 100", fmt.Sprintf("%.0f events/s", medianOf(r, "events/s")),
			fmt.Sprintf("raw claim+delete %.0f/s", medianOf(r, "raw-events/s")), fmt.Sprintf("%.3f", xr), "≥ 0.5", xr >= 0.5)
		row("drain batch 100 vs one event per request", fmt.Sprintf("%.0f events/s", medianOf(r, "events/s")),
			fmt.Sprintf("1 per request %.0f/s", medianOf(r, "single-events/s")), fmt.Sprintf("%.2f", xs), "≥ 3", xs >= 3)
	}
	if r := b["BenchmarkClaimLatency"]; r != nil {
		x := medianOf(r, "x-1k")
		row("claim latency (100 events), 1M queued", fmt.Sprintf("%.0f µs", medianOf(r, "µs-claim@1M")),
			fmt.Sprintf("1k queued %.0f µs", medianOf(r, "µs-claim@1k")), fmt.Sprintf("%.3f", x), "≤ 1.5", x <= 1.5)
	}
	if r := b["BenchmarkClaimAck"]; r != nil {
		row("claim + ack in batches of 100", fmt.Sprintf("%.0f events/s", medianOf(r, "events/s")), "-", "-", "", true)
	}
	if r := b["BenchmarkStatus"]; r != nil {
		x := medianOf(r, "x-1k")
		row("status's outbox query, 1M queued", fmt.Sprintf("%.0f µs", medianOf(r, "µs-status@1M")),
			fmt.Sprintf("1k queued %.0f µs", medianOf(r, "µs-status@1k")), fmt.Sprintf("%.3f", x), "≤ 2", x <= 2)
	}
	if r := b["BenchmarkEnqueueAtLimit"]; r != nil {
		x := medianOf(r, "x-below")
		row("in-process enqueueDB at max_size, evicting", fmt.Sprintf("%.0f events/s", medianOf(r, "limit-events/s")),
			fmt.Sprintf("below the limit %.0f/s", medianOf(r, "below-events/s")), fmt.Sprintf("%.3f (time)", x), "≤ 1.2", x <= 1.2)
	}
	return nil
}

// cmdPeer sets difflore's in-process enqueue → claim → ack beside goqite's
// send → receive → delete from the same run (medians over the rounds).
func cmdPeer(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: harness peer GOBENCH-FILE PEER-FILE")
	}
	b, err := goBenchMetrics(args[0])
	if err != nil {
		return err
	}
	ours := medianOf(b["BenchmarkEnqueueClaimAck"], "msgs/s")
	data, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	var theirs, theirCPU []float64
	for _, l := range strings.Split(string(data), "\n") {
		var r struct {
			MsgsPerSec  float64 `json:"msgs_per_s"`
			CPUPerMsgUS float64 `json:"cpu_us_per_msg"`
		}
		if json.Unmarshal([]byte(l), &r) == nil && r.MsgsPerSec > 0 {
			theirs = append(theirs, r.MsgsPerSec)
			theirCPU = append(theirCPU, r.CPUPerMsgUS)
		}
	}
	if ours == 0 || len(theirs) == 0 {
		return errors.New("missing figures")
	}
	slices.Sort(theirs)
	peer := theirs[(len(theirs)-1)/2]
	x := ours / peer
	row("enqueue → claim → ack, one at a time", fmt.Sprintf("%.0f msgs/s", ours), fmt.Sprintf("goqite %.0f msgs/s", peer), fmt.Sprintf("%.2f", x), "≥ 3", x >= 3)
	if ourCPU := medianOf(b["BenchmarkEnqueueClaimAck"], "process-cpu-µs/msg"); ourCPU > 0 {
		slices.Sort(theirCPU)
		peerCPU := theirCPU[(len(theirCPU)-1)/2]
		row("  the same, CPU time per message", fmt.Sprintf("%.0f µs", ourCPU), fmt.Sprintf("goqite %.0f µs", peerCPU), fmt.Sprintf("%.2f (goqite/ours)", peerCPU/ourCPU), "", true)
	}
	return nil
}
