package jaeger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The binaries the tests run, built (or found) once by TestMain.
type binaries struct{ difflore, jaeger string }

// bins is set by TestMain before any test runs and never changed after.
var bins binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "difflore-jaeger-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		bins.difflore = filepath.Join(dir, "difflore")
		build := exec.Command("go", "build", "-o", bins.difflore, ".")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build difflore: %v\n%s", err, out)
			return 1
		}
		bins.jaeger = os.Getenv("JAEGER_BIN")
		if bins.jaeger == "" {
			bins.jaeger = filepath.Join(dir, "jaeger")
			fmt.Fprintln(os.Stderr, "building jaeger (JAEGER_BIN is not set); this takes minutes when the build cache is cold")
			build := exec.Command("go", "build", "-o", bins.jaeger, "github.com/jaegertracing/jaeger/cmd/jaeger")
			if out, err := build.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build jaeger: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// freeAddr is a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond until it holds or timeout passes: what it waits for
// happens in another process, which announces nothing.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jaegerServer is a running jaeger: where it takes OTLP and where its
// query API answers.
type jaegerServer struct {
	otlp, query string
}

// startJaeger runs jaeger on loopback ports with in-memory storage, and
// stops it when the test ends.
func startJaeger(t *testing.T) jaegerServer {
	t.Helper()
	js := jaegerServer{otlp: freeAddr(t), query: freeAddr(t)}
	config, err := filepath.Abs("jaeger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins.jaeger, "--config", config)
	cmd.Env = append(os.Environ(), "JAEGER_OTLP_HTTP="+js.otlp, "JAEGER_QUERY_HTTP="+js.query, "JAEGER_QUERY_GRPC="+freeAddr(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("jaeger's output:\n%s", out.String())
		}
	})
	waitFor(t, 60*time.Second, "jaeger's query API and OTLP receiver", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("jaeger exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get("http://" + js.query + "/api/services")
		if err != nil {
			return false
		}
		resp.Body.Close()
		c, err := net.DialTimeout("tcp", js.otlp, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return resp.StatusCode == 200
	})
	return js
}

// home is one difflore data home in a temporary folder, never the user's.
type home struct {
	t   *testing.T
	dir string
}

func (h *home) run(args ...string) (string, int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.difflore, args...)
	cmd.Env = append(os.Environ(), "DIFFLORE_HOME="+h.dir, "DIFFLORE_CLOUD_URL=", "DIFFLORE_CLOUD_TOKEN=", "TRACEPARENT=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		h.t.Fatalf("difflore %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String() + stderr.String(), cmd.ProcessState.ExitCode()
}

func (h *home) mustRun(args ...string) string {
	h.t.Helper()
	out, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("difflore %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// daemonPID is the PID on line 1 of daemon.pid.
func (h *home) daemonPID() int {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "daemon.pid"))
	if err != nil {
		h.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		h.t.Fatal(err)
	}
	return pid
}

// pending is how many events wait in the outbox, by 'status --json'.
func (h *home) pending() int {
	h.t.Helper()
	out, _ := h.run("status", "--json")
	var st struct {
		Outbox struct {
			Pending  int `json:"pending"`
			Inflight int `json:"inflight"`
			Dead     int `json:"dead"`
		} `json:"outbox"`
	}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &st); err != nil {
		h.t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Outbox.Dead != 0 {
		h.t.Fatalf("%d dead letters", st.Outbox.Dead)
	}
	return st.Outbox.Pending + st.Outbox.Inflight
}

// claudeTurn is the hooks of one Claude Code turn, as Claude sends them
// (testdata/hooks shapes): the prompt, two tool calls in parallel whose
// ends come in the other order, the stop.
func claudeTurn(session string, n int) (starts, ends [][2]string) {
	prompt := fmt.Sprintf("2827e95d-621b-485a-a43b-%012d", n)
	base := fmt.Sprintf(`"session_id":%q,"transcript_path":"/home/dev/.claude/projects/-home-dev-project/%s.jsonl","cwd":"/home/dev/project","prompt_id":%q,"permission_mode":"default"`, session, session, prompt)
	tool := func(event, name, id, extra string) [2]string {
		return [2]string{"claude." + event, fmt.Sprintf(`{%s,"hook_event_name":%q,"tool_name":%q,"tool_input":{"command":"ls"},"tool_use_id":%q%s}`, base, event, name, id, extra)}
	}
	starts = [][2]string{
		{"claude.UserPromptSubmit", fmt.Sprintf(`{%s,"hook_event_name":"UserPromptSubmit","prompt":"turn %d"}`, base, n)},
		tool("PreToolUse", "Bash", fmt.Sprintf("toolu_%d_a", n), ""),
		tool("PreToolUse", "Read", fmt.Sprintf("toolu_%d_b", n), ""),
	}
	ends = [][2]string{
		tool("PostToolUse", "Read", fmt.Sprintf("toolu_%d_b", n), `,"tool_response":{"stdout":"README.md"}`),
		tool("PostToolUse", "Bash", fmt.Sprintf("toolu_%d_a", n), `,"tool_response":{"stdout":"ok"}`),
		{"claude.Stop", fmt.Sprintf(`{%s,"hook_event_name":"Stop","stop_hook_active":false,"last_assistant_message":"done"}`, base)},
	}
	return starts, ends
}

// jaegerSpan is a span as Jaeger's query API (/api/traces) returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) tag(key string) any {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return nil
}

// traces reads every trace of service difflore; raw asks Jaeger not to
// adjust them (its adjusters would hide a span stored twice).
func (js jaegerServer) traces(t *testing.T, raw bool) map[string][]jaegerSpan {
	t.Helper()
	end := time.Now().Add(time.Hour)
	url := fmt.Sprintf("http://%s/api/traces?service=difflore&limit=1000&start=%d&end=%d&raw=%t",
		js.query, end.Add(-3*time.Hour).UnixMicro(), end.UnixMicro(), raw)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			TraceID string       `json:"traceID"`
			Spans   []jaegerSpan `json:"spans"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	out := map[string][]jaegerSpan{}
	for _, tr := range body.Data {
		out[tr.TraceID] = append(out[tr.TraceID], tr.Spans...)
	}
	return out
}

// TestClaudeSessionInJaeger: a Claude Code session of ten turns, during
// which the daemon is killed with SIGKILL ten times, reaches Jaeger as one
// trace per turn, each an invoke_agent span with its two execute_tool
// spans under it: nothing orphaned, nothing duplicated, nothing missing.
func TestClaudeSessionInJaeger(t *testing.T) {
	js := startJaeger(t)
	h := &home{t: t, dir: filepath.Join(t.TempDir(), "home")}
	endpoint := "otlp+http://" + js.otlp
	session := "558cdcc9-eca8-448a-8061-64b5629eccb2"
	start := func() { h.mustRun("run", "--detach", "--endpoint", endpoint) }
	t.Cleanup(func() {
		h.run("stop")
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(h.dir, "daemon.log"))
			t.Logf("daemon.log:\n%s", log)
		}
	})
	seq := 0
	enqueue := func(events [][2]string) {
		for _, e := range events {
			seq++
			h.mustRun("enqueue", "--id", fmt.Sprintf("ev-%03d", seq), "--kind", e[0], e[1])
		}
	}
	enqueue([][2]string{{"claude.SessionStart", fmt.Sprintf(`{"session_id":%q,"transcript_path":"/home/dev/.claude/projects/-home-dev-project/%s.jsonl","cwd":"/home/dev/project","hook_event_name":"SessionStart","source":"startup"}`, session, session)}})
	start()
	const turns = 10
	for n := range turns {
		starts, ends := claudeTurn(session, n)
		enqueue(starts)
		// Killed while it delivers the starts, or just after: whatever
		// it had sent, claimed or kept of them must still meet the ends.
		pid := h.daemonPID()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", pid, err)
		}
		waitFor(t, 10*time.Second, "the killed daemon gone", func() bool { return syscall.Kill(pid, 0) != nil })
		enqueue(ends)
		start()
	}
	enqueue([][2]string{{"claude.SessionEnd", fmt.Sprintf(`{"session_id":%q,"cwd":"/home/dev/project","hook_event_name":"SessionEnd","reason":"other"}`, session)}})
	waitFor(t, 60*time.Second, "the outbox drained", func() bool { return h.pending() == 0 })

	var got map[string][]jaegerSpan
	waitFor(t, 30*time.Second, "every turn's spans in jaeger", func() bool {
		got = js.traces(t, false)
		n := 0
		for _, spans := range got {
			n += len(spans)
		}
		return len(got) >= turns && n >= 3*turns
	})
	checkTurns(t, got, session, turns)
	// Stored, before Jaeger's own deduplication: a span sent again after
	// a kill (the daemon died between the endpoint's answer and keeping
	// what it sent) would show here as the same span twice.
	stored := 0
	for _, spans := range js.traces(t, true) {
		stored += len(spans)
	}
	t.Logf("%d spans stored for %d turns (raw)", stored, turns)
	if stored != 3*turns {
		t.Errorf("%d spans stored, want %d: a span was sent twice", stored, 3*turns)
	}
}

// checkTurns checks the traces of a session of turns: one trace per turn,
// each an invoke_agent span with its two execute_tool spans under it, each
// span once, none unfinished.
func checkTurns(t *testing.T, got map[string][]jaegerSpan, session string, turns int) {
	t.Helper()
	if len(got) != turns {
		t.Errorf("%d traces, want one per turn (%d)", len(got), turns)
	}
	prompts := map[any]bool{}
	for id, spans := range got {
		byID := map[string]jaegerSpan{}
		var roots, tools []jaegerSpan
		for _, s := range spans {
			if _, dup := byID[s.SpanID]; dup {
				t.Errorf("trace %s: span %s (%s) twice", id, s.SpanID, s.OperationName)
			}
			byID[s.SpanID] = s
			if len(s.References) == 0 {
				roots = append(roots, s)
			} else {
				tools = append(tools, s)
			}
		}
		if len(roots) != 1 || roots[0].OperationName != "invoke_agent claude" || len(tools) != 2 {
			t.Errorf("trace %s: roots %v and %d children, want one invoke_agent claude with two tools", id, roots, len(tools))
			continue
		}
		prompts[roots[0].tag("prompt.id")] = true
		for _, s := range tools {
			ref := s.References[0]
			if !strings.HasPrefix(s.OperationName, "execute_tool ") || ref.RefType != "CHILD_OF" || ref.SpanID != roots[0].SpanID || ref.TraceID != id {
				t.Errorf("trace %s: %s refers to %+v, want CHILD_OF its turn %s", id, s.OperationName, ref, roots[0].SpanID)
			}
			if s.tag(unfinished) != nil {
				t.Errorf("trace %s: %s marked unfinished, though its end came", id, s.OperationName)
			}
		}
		if roots[0].tag(unfinished) != nil || roots[0].tag("gen_ai.conversation.id") != session {
			t.Errorf("trace %s: turn tags %v", id, roots[0].Tags)
		}
	}
	if len(prompts) != turns {
		t.Errorf("turns of %d prompts, want %d", len(prompts), turns)
	}
}

// unfinished is difflore's mark on a span it closed for want of an end.
const unfinished = "difflore.span.unfinished"
