package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes config.toml of the test's data home, mode 0600.
func writeConfig(t *testing.T, dir, text string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTokenStaysWithItsEndpoint: config.toml names endpoint A and its
// token; a drain or a daemon pointed at B by --endpoint must not send B
// that token, and says once that it withheld it. An endpoint of A's
// origin, or B named with its own token in the environment, gets one.
func TestTokenStaysWithItsEndpoint(t *testing.T) {
	dir := testHome(t)
	a := newEndpoint(t, nil)
	b := newEndpoint(t, nil)
	writeConfig(t, dir, "endpoint = \""+a.URL+"/v1/events\"\ntoken = \"token-for-a\"\n")

	mustCLI(t, "enqueue", "--id", "e1", `{"n":1}`)
	out, errOut, code := cli(t, "", "drain", "--endpoint", b.URL)
	if code != 0 {
		t.Fatalf("drain --endpoint B: exit %d\n%s%s", code, out, errOut)
	}
	if got := b.next(t, 5*time.Second).header.Get("Authorization"); got != "" {
		t.Errorf("drain --endpoint B sent B the token of A: Authorization %q", got)
	}
	if n := strings.Count(errOut, "token"); n == 0 || !strings.Contains(errOut, "hint: ") || strings.Contains(errOut, "token-for-a") {
		t.Errorf("drain --endpoint B: stderr %q; want it to say once, with a hint, that the token was not sent", errOut)
	}

	// The same origin, another path: the token goes.
	mustCLI(t, "enqueue", "--id", "e2", `{"n":2}`)
	out, errOut, code = cli(t, "", "drain", "--endpoint", a.URL+"/other")
	if got := a.next(t, 5*time.Second).header.Get("Authorization"); code != 0 || got != "Bearer token-for-a" {
		t.Errorf("drain --endpoint A/other: exit %d, Authorization %q; want A's token\n%s%s", code, got, out, errOut)
	}

	// B named with a token of its own, both in the environment: it goes.
	t.Setenv("DIFFLORE_CLOUD_URL", b.URL)
	t.Setenv("DIFFLORE_CLOUD_TOKEN", "token-for-b")
	mustCLI(t, "enqueue", "--id", "e3", `{"n":3}`)
	mustCLI(t, "drain")
	if got := b.next(t, 5*time.Second).header.Get("Authorization"); got != "Bearer token-for-b" {
		t.Errorf("DIFFLORE_CLOUD_URL=B DIFFLORE_CLOUD_TOKEN=…: Authorization %q, want B's token", got)
	}
	t.Setenv("DIFFLORE_CLOUD_URL", "")
	t.Setenv("DIFFLORE_CLOUD_TOKEN", "")

	// The daemon, pointed at B.
	mustCLI(t, "enqueue", "--id", "e4", `{"n":4}`)
	logs := inProcessDaemon(t, "--endpoint", b.URL)
	if got := b.next(t, 20*time.Second).header.Get("Authorization"); got != "" {
		t.Errorf("run --endpoint B sent B the token of A: Authorization %q", got)
	}
	// The in-process daemon's log buffer announces no lines: poll it.
	waitFor(t, 10*time.Second, "the daemon's log to say the token was withheld", func() bool {
		return strings.Contains(logs.String(), "not sent")
	})
	if strings.Contains(logs.String(), "token-for-a") {
		t.Errorf("the daemon's log shows the token:\n%s", logs)
	}
}

// TestTokenTrimmed: a token written on Windows ends in \r (and a file's
// last line in \n); both go, from the file and from the environment, and
// the request carries the token alone.
func TestTokenTrimmed(t *testing.T) {
	dir := testHome(t)
	ep := newEndpoint(t, nil)
	writeConfig(t, dir, "endpoint = \""+ep.URL+"\"\ntoken = \"tok-file\\r\\n\"\n")
	mustCLI(t, "enqueue", "--id", "e1", `{"n":1}`)
	out, errOut, code := cli(t, "", "drain")
	if got := ep.next(t, 5*time.Second).header.Get("Authorization"); code != 0 || got != "Bearer tok-file" {
		t.Errorf("token \"tok-file\\r\\n\" in config.toml: exit %d, Authorization %q\n%s%s", code, got, out, errOut)
	}
	t.Setenv("DIFFLORE_CLOUD_TOKEN", " tok-env\r")
	mustCLI(t, "enqueue", "--id", "e2", `{"n":2}`)
	out, errOut, code = cli(t, "", "drain")
	if got := ep.next(t, 5*time.Second).header.Get("Authorization"); code != 0 || got != "Bearer tok-env" {
		t.Errorf("DIFFLORE_CLOUD_TOKEN=\" tok-env\\r\": exit %d, Authorization %q\n%s%s", code, got, out, errOut)
	}
}

// TestTokenRefused: a token with a line break, a space or a control
// character inside it is refused where it is set and where a daemon or a
// drain starts, and a request that cannot be built for it pauses delivery
// rather than counting an attempt against the batch.
func TestTokenRefused(t *testing.T) {
	dir := testHome(t)
	ep := newEndpoint(t, nil)
	if _, errOut, code := cli(t, "a\nb", "config", "set", "token", "-"); code != 2 || !strings.Contains(errOut, "line break") {
		t.Errorf("printf 'a\\nb' | config set token -: exit %d, %q; want 2 and a line break named", code, errOut)
	}
	if _, errOut, code := cli(t, "tok\r\n", "config", "set", "token", "-"); code != 0 {
		t.Errorf("printf 'tok\\r\\n' | config set token -: exit %d, %q; want it set", code, errOut)
	}
	if out := mustCLI(t, "config", "get", "--show-token", "token"); out != "tok\n" {
		t.Errorf("token set from \"tok\\r\\n\" reads back as %q", out)
	}
	writeConfig(t, dir, "endpoint = \""+ep.URL+"\"\ntoken = \"to\\rk\"\n")
	for _, args := range [][]string{{"drain"}, {"run"}} {
		if _, errOut, code := cli(t, "", args...); code != 1 || !strings.Contains(errOut, "token holds a line break inside it") {
			t.Errorf("%s with token \"to\\rk\": exit %d, %q; want 1 and the token refused", args[0], code, errOut)
		}
	}
	if n := len(ep.requests()); n != 0 {
		t.Errorf("the endpoint got %d requests", n)
	}
	// A sink made with such a token anyway pauses, counting nothing.
	r := testSink(t, ep.URL, "to\rk").send(context.Background(), testEvents(1, `{}`))
	if r.verdict != paused || !strings.Contains(r.err, "token") {
		t.Errorf("send with token \"to\\rk\": %+v; want paused, with the token named", r)
	}
	if n := len(ep.requests()); n != 0 {
		t.Errorf("the endpoint got %d requests", n)
	}
}
