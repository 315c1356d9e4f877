package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// hostileText is what an endpoint may answer to take over the terminal
// that prints it: a window title (OSC 0), a screen clear, a fake green
// "delivery: ok" on a line of its own, a clipboard write (OSC 52), a C1
// CSI, DEL and a right-to-left override.
const hostileText = "\x1b]0;owned\x07\x1b[2J\r\n\x1b[32mdelivery: ok\x1b[0m\t\x1b]52;c;cm0gLXJmIH4K\x07 \u009b31m \x7f \u202eevil\u2069 end"

// terminalBytes lists what of hostileText a terminal would act on, found
// in out.
func terminalBytes(out string) []string {
	var found []string
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u009b", "\x7f", "\u202e", "\u2069"} {
		if strings.Contains(out, bad) {
			found = append(found, fmt.Sprintf("%q", bad))
		}
	}
	return found
}

// TestEndpointTextEscaped drains to an endpoint whose answers carry
// terminal escapes, first in a 500's body, then in the error of the
// rejections of a 200, and checks that drain, status and outbox list
// print them escaped, in text and in JSON.
func TestEndpointTextEscaped(t *testing.T) {
	dir := testHome(t)
	rejectAll := false
	ep := newEndpoint(t, func(_ int, r recorded) answer {
		if !rejectAll {
			return answer{status: 500, body: hostileText}
		}
		var entries []string
		for _, id := range r.ids() {
			e, _ := json.Marshal(rejection{ID: id, Error: hostileText})
			entries = append(entries, string(e))
		}
		return answer{status: 200, body: `{"rejected":[` + strings.Join(entries, ",") + `]}`}
	})
	for _, id := range []string{"a", "b"} {
		mustCLI(t, "enqueue", "--id", id, `{"n":1}`)
	}
	check := func(what, out string) {
		t.Helper()
		if bad := terminalBytes(out); len(bad) > 0 {
			t.Errorf("%s prints the endpoint's %s raw:\n%q", what, strings.Join(bad, ", "), out)
		}
	}
	out, errOut, _ := cli(t, "", "drain", "--endpoint", ep.URL)
	check("drain", out+errOut)
	if !strings.Contains(out, `\x1b]0;owned\x07\x1b[2J\r`) {
		t.Errorf("drain does not show the error text, escaped: %q", out)
	}
	out, errOut, _ = cli(t, "", "drain", "--endpoint", ep.URL, "--json")
	check("drain --json", out+errOut)
	out, errOut, _ = cli(t, "", "status")
	check("status", out+errOut)
	out, errOut, _ = cli(t, "", "status", "--json")
	check("status --json", out+errOut)

	rejectAll = true
	out, errOut, _ = cli(t, "", "drain", "--endpoint", ep.URL)
	check("drain of rejected events", out+errOut)
	if c := outboxCounts(t, dir); c.Dead != 2 {
		t.Fatalf("%d dead letters, want 2", c.Dead)
	}
	out, errOut, _ = cli(t, "", "outbox", "list")
	check("outbox list", out+errOut)
	if !strings.Contains(out, `rejected: \x1b]0;owned`) {
		t.Errorf("outbox list does not show the rejection, escaped: %q", out)
	}
	out, errOut, _ = cli(t, "", "outbox", "list", "--json")
	check("outbox list --json", out+errOut)
	out, errOut, _ = cli(t, "", "outbox", "show", "a")
	check("outbox show", out+errOut)
}

func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text, é and 日本", "plain text, é and 日本"},
		{"a\tb\r\nc", `a\tb\r\nc`},
		{"\x1b[2J\x07\x00\x7f", `\x1b[2J\x07\x00\x7f`},
		{"\u009b31m \u0085", `\u009b31m \u0085`},
		{"\xff\x9bok", `\xff\x9bok`},
		{"\u202eevil\u2066x\u2069\u2028", `\u202eevil\u2066x\u2069\u2028`},
		{`C:\Users\o`, `C:\Users\o`},
	} {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var b strings.Builder
	if err := writeJSON(&b, map[string]string{"e": "\x1b \u009b \x7f \u202e"}, true); err != nil || b.String() != `{"e":"\u001b \u009b \u007f \u202e"}`+"\n" {
		t.Errorf("writeJSON = %q, %v", b.String(), err)
	}
}

// TestJSONLogEscaped: the daemon's JSON log, which 'difflore logs' prints,
// escapes what encoding/json leaves raw of an endpoint's answer.
func TestJSONLogEscaped(t *testing.T) {
	var b strings.Builder
	newLogger(&b, true, 0).Warn("delivery failed", "error", hostileText)
	if bad := terminalBytes(b.String()); len(bad) > 0 {
		t.Errorf("JSON log line holds %s raw: %q", strings.Join(bad, ", "), b.String())
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil || v["error"] != hostileText {
		t.Errorf("JSON log line does not read back as the same text: %v, %q", err, v["error"])
	}
}
