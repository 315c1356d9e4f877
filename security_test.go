package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// secretToken has the characters that JSON and URLs escape differently,
// so that an endpoint's echo of it takes several forms.
const secretToken = "dl_s3cr3t/T0k+en=ABCDEFGH1234567"

// tokenForms are the ways secretToken can appear in text: as it is, and as
// an endpoint that echoes a request may escape it.
func tokenForms() []string {
	j, _ := json.Marshal(secretToken)
	return []string{
		secretToken,
		string(j[1 : len(j)-1]),
		strings.ReplaceAll(secretToken, "/", `\/`),
		url.QueryEscape(secretToken),
		url.PathEscape(secretToken),
		"s3cr3t", // a piece of it is as bad as the whole
	}
}

// assertNoToken fails the test if text holds the token in any form.
func assertNoToken(t *testing.T, where, text string) {
	t.Helper()
	for _, f := range tokenForms() {
		if i := strings.Index(text, f); i >= 0 {
			// Show where, not all of it: the text may be a database.
			t.Errorf("the token appears (as %q) in %s: %q", f, where, text[max(0, i-200):min(len(text), i+len(f)+200)])
			return
		}
	}
}

// echoServer answers each event (sent one per batch) by its id, and echoes
// the Authorization header back in every error it gives, in a different
// form each time: as it is, URL-encoded, and JSON-escaped with "\/".
type echoServer struct {
	mu       sync.Mutex
	attempts map[string]int
}

func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	var batch struct {
		Events []struct{ ID string } `json:"events"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &batch); err != nil || len(batch.Events) != 1 {
		http.Error(w, "want one event", http.StatusBadRequest)
		return
	}
	id := batch.Events[0].ID
	s.mu.Lock()
	s.attempts[id]++
	n := s.attempts[id]
	s.mu.Unlock()
	switch {
	case id == "retry-then-reject" && n == 1:
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "upstream failed for request with Authorization: %s", auth)
	case id == "retry-then-reject":
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `{"rejected":[{"id":%q,"error":"not allowed for %s","retryable":false}]}`,
			id, strings.ReplaceAll(auth, "/", `\/`))
	case id == "bad":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "invalid event; authorization=%s", url.QueryEscape(auth))
	case id == "unauthorized":
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "token %q is not valid", auth)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// TestTokenNeverShown runs a detached daemon against an endpoint that
// echoes the bearer token back in its errors: the token must not reach
// daemon.log, the commands' output, status, the dead letters or errors.
func TestTokenNeverShown(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	e.setenv("DIFFLORE_CLOUD_TOKEN", secretToken)
	srv := httptest.NewServer(&echoServer{attempts: map[string]int{}})
	defer srv.Close()
	e.setenv("DIFFLORE_CLOUD_URL", srv.URL)

	var shown strings.Builder
	show := func(args ...string) string {
		out, errOut, code := e.cli("", args...)
		fmt.Fprintf(&shown, "$ difflore %s (exit %d)\n%s%s", strings.Join(args, " "), code, out, errOut)
		return out
	}
	show("enqueue", "--id", "retry-then-reject", `{"n":1}`)
	show("enqueue", "--id", "bad", `{"n":2}`)
	// From a child in e's environment, which the detached daemon
	// inherits with the token.
	out, errOut, code := runProc(t, e.command("run", "--detach", "--batch", "1"), time.Minute)
	fmt.Fprintf(&shown, "$ difflore run --detach --batch 1 (exit %d)\n%s%s", code, out, errOut)
	// Dead letters reach no endpoint: poll the outbox.
	waitFor(t, 20*time.Second, "two dead letters", func() bool {
		return strings.Contains(show("outbox", "list"), "0 pending, 0 inflight, 2 dead")
	})
	// Now an answer that pauses delivery, so that status shows a reason.
	show("enqueue", "--id", "unauthorized", `{"n":3}`)
	// A pause shows only in status: poll it.
	waitFor(t, 20*time.Second, "delivery to pause", func() bool {
		out := show("status")
		return strings.Contains(out, "paused:")
	})
	show("status", "--json")
	show("outbox", "list", "--json")
	show("stop")

	out = shown.String()
	assertNoToken(t, "the commands' output", out)
	for _, want := range []string{"[redacted]", "dead letters:", "paused:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q, so the test did not see what it checks:\n%s", want, out)
		}
	}
	logData, err := os.ReadFile(filepath.Join(home, logFileName))
	if err != nil {
		t.Fatal(err)
	}
	assertNoToken(t, "daemon.log", string(logData))
	if !strings.Contains(string(logData), "redacted") {
		t.Errorf("daemon.log shows none of the endpoint's errors:\n%s", logData)
	}
	// The database holds the errors that status and outbox list show.
	db, err := os.ReadFile(filepath.Join(home, dbFileName))
	if err != nil {
		t.Fatal(err)
	}
	assertNoToken(t, "outbox.db", string(db))
}

// TestTokenNotInForegroundLog checks the foreground daemon's log (standard
// error) the same way, for an endpoint that answers every batch with 500
// and the token.
func TestTokenNotInForegroundLog(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.setenv("DIFFLORE_CLOUD_TOKEN", secretToken)
	var hits sync.WaitGroup
	hits.Add(1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "you sent %s", r.Header.Get("Authorization"))
		once.Do(hits.Done)
	}))
	defer srv.Close()
	e.mustCLI("enqueue", `{"n":1}`)
	d := e.startDaemon("--endpoint", srv.URL)
	hits.Wait()
	// The failure is recorded after the answer, with no signal: poll status.
	waitFor(t, 10*time.Second, "the failure in the log", func() bool {
		out, _, _ := e.cli("", "status")
		return strings.Contains(out, "failed")
	})
	e.mustCLI("stop")
	d.wait(t, 15*time.Second)
	assertNoToken(t, "the daemon's standard error", d.log.String())
	if !strings.Contains(d.log.String(), "[redacted]") {
		t.Errorf("the log does not show the scrubbed error:\n%s", d.log)
	}
}

// TestInsecureEndpointRefused checks that plain http to a host that is not
// loopback is refused before anything starts or is created, from the flag
// or the environment, in the foreground or detached.
func TestInsecureEndpointRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		args []string
	}{
		{"flag", "", []string{"run", "--endpoint", "http://ingest.example.com/v1"}},
		{"detach", "", []string{"run", "--detach", "--endpoint", "http://203.0.113.7:8080/"}},
		{"env", "http://user:pw@ingest.example.com/", []string{"run"}},
		{"not-quite-loopback", "", []string{"run", "--endpoint", "http://localhost.example.com/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := testHome(t)
			t.Setenv("DIFFLORE_CLOUD_URL", tc.env)
			out, errOut, code := cli(t, "", tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s%s", code, out, errOut)
			}
			if !strings.Contains(errOut, "plain http") || !strings.Contains(errOut, "hint: ") {
				t.Errorf("stderr does not say why or what to do:\n%s", errOut)
			}
			if strings.Contains(errOut, "pw@") {
				t.Errorf("the URL's password is shown:\n%s", errOut)
			}
			if _, err := os.Stat(home); !os.IsNotExist(err) {
				t.Errorf("the data home was created (%v): something started", err)
			}
		})
	}
	// Loopback and --allow-insecure are accepted; nothing is sent here.
	for _, raw := range []string{"http://127.0.0.1:9/x", "http://localhost:9/", "http://[::1]:9/"} {
		if _, err := parseEndpoint(raw, "", "test", false); err != nil {
			t.Errorf("parseEndpoint(%q): %v", raw, err)
		}
	}
	if _, err := parseEndpoint("http://ingest.example.com/", "", "test", true); err != nil {
		t.Errorf("--allow-insecure: %v", err)
	}
}

// TestRedirectDowngradeRefused checks that an https endpoint cannot send
// the daemon, its token and its events, to plain http on another host by a
// redirect: the check of the endpoint must hold for where it leads too.
func TestRedirectDowngradeRefused(t *testing.T) {
	// No redirect is followed at all: one to plain http would carry the
	// token off the network's protection, and a 301, 302 or 303 would turn
	// the POST into a GET without the events.
	for _, insecure := range []bool{false, true} {
		s, err := parseEndpoint("https://ingest.example.com/v1", secretToken, "test", insecure)
		if err != nil {
			t.Fatal(err)
		}
		client := s.(*httpSink).client
		if client.CheckRedirect == nil {
			t.Fatal("the sink's client follows every redirect")
		}
		via := []*http.Request{httptest.NewRequest("POST", "https://ingest.example.com/v1", nil)}
		for _, target := range []string{"http://ingest.example.com/v1", "http://evil.example.net/", "https://ingest2.example.com/", "http://127.0.0.1:8080/collect"} {
			if err := client.CheckRedirect(httptest.NewRequest("POST", target, nil), via); !errors.Is(err, http.ErrUseLastResponse) {
				t.Errorf("redirect to %s (allow-insecure %v): %v, want it not followed", target, insecure, err)
			}
		}
	}
}

// TestSpillIDsDifferingInCase spills two events whose ids differ only in
// case. On a file system that ignores case (macOS, Windows) a spill file
// named after the id would be replaced by the second, and an event lost.
func TestSpillIDsDifferingInCase(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	home := e.home
	h, err := openHome(home, true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, id := range []string{"Evt", "evt", "CON"} {
		if _, err := spillEvent(h, spilled{ID: id, Kind: "event", CreatedAt: now, Payload: `{"id":"` + id + `"}`}); err != nil {
			t.Fatalf("spill %s: %v", id, err)
		}
	}
	ob := mustOutbox(t, h, time.Now)
	defer ob.Close()
	if n := replayAll(t, h, ob); n != 3 {
		t.Fatalf("replayed %d spilled events, want 3", n)
	}
	c, err := ob.counts()
	if err != nil || c.Pending != 3 {
		t.Fatalf("%d pending after replay (%v), want 3", c.Pending, err)
	}
}

// TestEnqueueSizeLimit checks the 1 MiB limit at its edges, on standard
// input as hooks use it: the limit is on the JSON value, so the newline
// that echo adds does not push a 1 MiB value over it, and no amount of
// white space smuggles a second value past the reader's limit. --strict
// makes a refusal exit 2 (without it, the refused payload is a dead letter).
func TestEnqueueSizeLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	value := func(n int) string { return `"` + strings.Repeat("x", n-2) + `"` } // n bytes of JSON
	for _, tc := range []struct {
		name  string
		stdin string
		code  int
	}{
		{"1MiB-and-newline", value(maxPayload) + "\n", 0},
		{"1MiB-in-white-space", "\r\n\t " + value(maxPayload) + " \n", 0},
		{"1MiB-plus-1", value(maxPayload+1) + "\n", 2},
		{"value-after-much-white-space", "{}" + strings.Repeat(" ", maxPayload+payloadSlack) + "{}", 2},
		{"nbsp-around", "\u00a0{}\u00a0", 2},
		{"invalid-utf8", "\"\xff\"", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := e.cli(tc.stdin, "enqueue", "--strict")
			if code != tc.code {
				t.Errorf("exit %d, want %d: %.200s", code, tc.code, errOut)
			}
		})
	}
}

// TestEndpointPasswordNotShown gives endpoints with a password in them
// that run must refuse: the refusal must not print the password, which
// url.Parse's own error quotes.
func TestEndpointPasswordNotShown(t *testing.T) {
	for _, raw := range []string{
		"https://user:hunter2pass@ingest.example.com/%zz",
		"https://user:hunter2pass@ingest example.com/",
		"https://user:hunter2pass@[::1/",
		"ftp://user:hunter2pass@ingest.example.com/",
		"file://user:hunter2pass@",
	} {
		for _, viaEnv := range []bool{false, true} {
			testHome(t)
			args := []string{"run", "--endpoint", raw}
			if viaEnv {
				t.Setenv("DIFFLORE_CLOUD_URL", raw)
				args = []string{"run"}
			}
			out, errOut, code := cli(t, "", args...)
			if code != 2 {
				t.Errorf("run with %q: exit %d, want 2\n%s", raw, code, errOut)
			}
			if strings.Contains(out+errOut, "hunter2") {
				t.Errorf("run with %q shows the password:\n%s%s", raw, out, errOut)
			}
		}
	}
}
