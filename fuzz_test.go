package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets check the parsers that take input from outside difflore:
// the PID file (anyone who can write the home), enqueue's payload and names
// (every agent hook) and the endpoint's answer (the network). Their seed
// corpora live in testdata/fuzz/<FuzzName>; 'go test' runs the seeds, and
// .ci/run fuzzes each target for a few seconds.

// FuzzParsePIDFile checks that no PID file, however broken, yields a PID
// that stop could turn into a signal to init, a process group or everyone.
func FuzzParsePIDFile(f *testing.F) {
	f.Add([]byte("1234\n"))
	f.Add([]byte("1234\n{\"started_at\":\"2026-11-25T18:00:00Z\",\"exe\":\"/usr/bin/difflore\",\"version\":\"v1\"}\n"))
	f.Add([]byte("1\n"))
	f.Add([]byte("0\n"))
	f.Add([]byte("-1\n"))
	f.Add([]byte("+42\n"))
	f.Add([]byte(" 42 \r\n"))
	f.Add([]byte("4294967297\n"))
	f.Add([]byte("42\nnull\n"))
	f.Add([]byte("42\n{\"started_at\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parsePIDFile(data)
		if err != nil {
			return
		}
		if info.PID <= 1 {
			t.Fatalf("parsePIDFile(%q) = pid %d, want an error for a pid <= 1", data, info.PID)
		}
		// Whatever parses must survive being written and read back, since
		// the daemon writes what stop later reads.
		again, err := parsePIDFile(formatPIDFile(info))
		if err != nil {
			t.Fatalf("parsePIDFile(formatPIDFile(%+v)): %v", info, err)
		}
		if !samePIDInfo(info, again) {
			t.Fatalf("round trip changed the pid file:\n got %+v\nwant %+v", again, info)
		}
	})
}

// FuzzFormatPIDFile checks that every PID file the daemon can write reads
// back as what it wrote: a field lost on the way would make stop refuse to
// signal the daemon, or signal the wrong one.
func FuzzFormatPIDFile(f *testing.F) {
	f.Add(1234, int64(1764093600123), "/usr/local/bin/difflore", "v1.2.3", "https://ingest.example.com/v1")
	f.Add(2, int64(0), "", "", "")
	f.Add(99999, int64(-1), "C:\\Program Files\\difflore.exe", "devel-0123456789ab", "file:///tmp/x")
	f.Add(77, int64(1764093600123), "/tmp/\xff\xfe/difflore", "v\x00", "")
	f.Fuzz(func(t *testing.T, pid int, startMS int64, exe, version, endpoint string) {
		if pid <= 1 || pid > 1<<31-1 {
			return // parsePIDFile refuses these on purpose.
		}
		// Process start times are between 1970 and 9999: JSON can hold no
		// other RFC 3339 time.
		startMS = startMS % (253402300799 * 1000)
		if startMS < 0 {
			startMS = -startMS
		}
		info := pidInfo{PID: pid, StartedAt: time.UnixMilli(startMS).UTC(), Exe: exe, Version: version, Endpoint: endpoint}
		got, err := parsePIDFile(formatPIDFile(info))
		if err != nil {
			t.Fatalf("parsePIDFile(formatPIDFile(%+v)): %v", info, err)
		}
		if !samePIDInfo(info, got) {
			t.Fatalf("round trip changed the pid file:\n got %+v\nwant %+v", got, info)
		}
	})
}

// samePIDInfo compares what a PID file said with what it says after a round
// trip. JSON carries only UTF-8, so the strings are compared as JSON keeps
// them; the executable must still be recognised as the same program.
func samePIDInfo(a, b pidInfo) bool {
	return a.PID == b.PID && a.StartedAt.Equal(b.StartedAt) && jsonUTF8(a.Exe) == b.Exe &&
		sameExeName(filepath.Base(a.Exe), filepath.Base(b.Exe)) &&
		jsonUTF8(a.Version) == b.Version && jsonUTF8(a.Endpoint) == b.Endpoint && jsonUTF8(a.Lock) == b.Lock
}

// FuzzCheckPayload checks enqueue's payload gate: what it accepts is one
// valid JSON value in UTF-8 of at most 1 MiB, the value the caller gave.
func FuzzCheckPayload(f *testing.F) {
	for _, s := range []string{
		`{"tool":"Bash"}`, ` [1,2,3] `, "\n\"x\"\n", `null`, `{}{}`, `{"a":`, ``, "  \t", "\"\xff\"",
		"\u00a0{}", "{}\u0085", `1e999`, `"\ud800"`, "\xef\xbb\xbf{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := checkPayload(in)
		if err != nil {
			if code := exitCode(err); code != 2 {
				t.Fatalf("checkPayload(%q): exit code %d, want 2", in, code)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("checkPayload(%q) accepted %q, which is not valid JSON", in, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("checkPayload(%q) accepted %q, which is not UTF-8: the wire format and the spill file cannot carry it", in, out)
		}
		if len(out) > maxPayload {
			t.Fatalf("checkPayload accepted %d bytes, more than %d", len(out), maxPayload)
		}
		// Only JSON white space may be dropped: the rest is the event.
		if !bytes.Contains(in, out) || len(bytes.Trim(bytes.Replace(in, out, nil, 1), " \t\r\n")) != 0 {
			t.Fatalf("checkPayload(%q) = %q: more than JSON white space was dropped", in, out)
		}
	})
}

// FuzzCheckName checks the gate for --id and --kind: an accepted name is
// short and safe in a log line and a file name.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"event", "claude.PostToolUse", "a:b-c_d", "", ".hidden", "-flag", "../etc/passwd", "a/b", "a\x00b", "é", strings.Repeat("x", 129)} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, emptyOK bool) {
		err := checkName("id", s, emptyOK)
		if err != nil {
			if code := exitCode(err); code != 2 {
				t.Fatalf("checkName(%q): exit code %d, want 2", s, code)
			}
			return
		}
		if s == "" {
			if !emptyOK {
				t.Fatal("checkName accepted an empty name")
			}
			return
		}
		if len(s) > 128 || s[0] == '.' || s[0] == '-' || strings.ContainsAny(s, "/\\\x00 \n") || s == "." || s == ".." {
			t.Fatalf("checkName accepted %q", s)
		}
	})
}

// FuzzClassify checks the parsers of the endpoint's answer (classify and
// readRejected): they never panic, a Retry-After never holds delivery back
// for more than an hour or less than nothing, error texts stay bounded, and
// the token never survives scrubbing, whatever the endpoint echoes back.
func FuzzClassify(f *testing.F) {
	const tok = "s3cr3t-t0ken/with+chars=="
	f.Add(500, "", []byte("internal error"), tok)
	f.Add(429, "120", []byte(""), tok)
	f.Add(503, "Wed, 25 Nov 2026 18:00:00 GMT", []byte("busy"), tok)
	f.Add(503, "99999999999999999999", []byte(""), tok)
	f.Add(503, "-5", []byte(""), tok)
	f.Add(200, "", []byte(`{"rejected":[{"id":"a","error":"bad","retryable":true},{"id":"","error":"x"}]}`), tok)
	f.Add(200, "", []byte(`{"rejected":[{"id":"a","error":"Bearer `+tok+`"}]}`), tok)
	f.Add(400, "", []byte(`{"error":"bad auth","echo":"Bearer `+tok+`"}`), tok)
	f.Add(400, "", []byte(`{"echo":"Bearer s3cr3t-t0ken\/with+chars=="}`), tok)
	f.Add(500, "", []byte(`got authorization=Bearer+s3cr3t-t0ken%2Fwith%2Bchars%3D%3D`), tok)
	f.Add(400, "", []byte(strings.Repeat("é", 3000)), tok)
	f.Add(401, "", []byte(strings.Repeat("x", 2040)+tok), tok)
	f.Add(0, "", []byte(nil), "")
	f.Add(999, "1", []byte("\xff\xfe"), "\xff")
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte, token string) {
		s := &httpSink{poster{token: token}}
		r := classify(status, retryAfter, body, now, s.scrub)
		if r.retryAfter < 0 || r.retryAfter > maxRetryAfter {
			t.Fatalf("classify(%d, Retry-After %q): retryAfter %s, want within [0, %s]", status, retryAfter, r.retryAfter, maxRetryAfter)
		}
		if d := parseRetryAfter(retryAfter, now); d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s, want within [0, %s]", retryAfter, d, maxRetryAfter)
		}
		texts := []string{r.err}
		// A 2xx answer's rejections are read from its body as it streams.
		rejected, _ := readRejected(bytes.NewReader(body), []event{{ID: "a"}, {ID: "b"}}, s.scrub)
		for _, rj := range rejected {
			if rj.ID == "" {
				t.Fatalf("classify kept a rejection without an id: %+v", rj)
			}
			texts = append(texts, rj.Error)
		}
		for _, text := range texts {
			if len(strings.TrimSuffix(text, "…")) > maxErrorText {
				t.Fatalf("error text of %d bytes, want at most %d and an ellipsis", len(text), maxErrorText)
			}
			if !realisticToken(token) {
				continue
			}
			// An endpoint that echoes the request may escape the token
			// as JSON or as a URL does; each form is the secret.
			jsonTok, _ := json.Marshal(token)
			for _, form := range []string{token, string(jsonTok[1 : len(jsonTok)-1]), url.QueryEscape(token), url.PathEscape(token), strings.ReplaceAll(token, "/", `\/`)} {
				if strings.Contains(text, form) {
					t.Fatalf("the token %q survived scrubbing as %q in %q", token, form, text)
				}
			}
		}
		if status >= 200 && status < 300 {
			if r.verdict != delivered {
				t.Fatalf("classify(%d): verdict %d, want delivered", status, r.verdict)
			}
		} else if r.verdict == delivered {
			t.Fatalf("classify(%d): a %s answer counted as delivered", status, http.StatusText(status))
		}
	})
}

// realisticToken reports whether token could be a bearer token: scrubbing
// cannot hide a one-letter "token" that also occurs in the words around it,
// so the property is checked for tokens that are long enough to be secret.
func realisticToken(token string) bool {
	if len(token) < 16 {
		return false
	}
	// RFC 6750's b64token characters.
	for _, r := range token {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r)
		if !ok {
			return false
		}
	}
	return true
}

// TestParseRetryAfterHostile pins answers that a careless parser gets
// wrong: a wait too long for an int64 is a long wait, not none.
func TestParseRetryAfterHostile(t *testing.T) {
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"99999999999999999999", maxRetryAfter},
		{"-99999999999999999999", 0},
		{"-1", 0},
		{"+30", 30 * time.Second},
		{" 7 ", 7 * time.Second},
		{"1e3", 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0},
		{"Wed, 25 Nov 2026 18:00:30 GMT", 30 * time.Second},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
