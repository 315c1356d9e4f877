package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// gzipAnswer compresses a 2xx answer made of head, n copies of fill and
// tail, as a server that sends Content-Encoding: gzip does: a few dozen KiB
// on the wire that the client's transport inflates to n bytes.
func gzipAnswer(t *testing.T, head string, fill byte, n int, tail string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte(head))
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		zw.Write(chunk[:min(left, len(chunk))])
	}
	zw.Write([]byte(tail))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHostileAnswerBounded answers a batch with a 2xx whose body is under
// maxAnswer once inflated but built to cost memory: 60 MiB of '[' (one
// decoder stack entry each) and a 60 MiB string (held whole to be decoded).
// Neither may be read as an acknowledgement, and reading either must cost a
// bounded amount of memory, for the plain endpoint and for OTLP.
func TestHostileAnswerBounded(t *testing.T) {
	const n = 60 << 20
	const bound = 16 << 20
	answers := []struct {
		name string
		body []byte
	}{
		{"nesting bomb", gzipAnswer(t, `{"a":`, '[', n, "")},
		{"huge string", gzipAnswer(t, `{"rejected":"`, 'x', n, `"}`)},
	}
	for _, a := range answers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(200)
			w.Write(a.body)
		}))
		for _, scheme := range []string{"", "otlp+"} {
			s, err := parseEndpoint(scheme+srv.URL, "", "1.2.3", false)
			if err != nil {
				t.Fatal(err)
			}
			events := testEvents(2, `{}`)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r := s.send(context.Background(), events)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s%s: %d KiB on the wire, verdict %d, %d MiB allocated: %s", scheme, a.name, len(a.body)>>10, r.verdict, alloc>>20, r.err)
			if r.verdict != retryLater {
				t.Errorf("%s %s: verdict %d (%s), want retryLater: an answer not read to its end acknowledges nothing", scheme+"http", a.name, r.verdict, r.err)
			}
			if alloc > bound {
				t.Errorf("%s %s: reading the answer allocated %d MiB, want under %d MiB", scheme+"http", a.name, alloc>>20, bound>>20)
			}
		}
		srv.Close()
	}
}

// TestReadRejectedBounds checks the bounds of the answer reader itself:
// nesting up to maxAnswerDepth and strings up to maxAnswerToken are read,
// past them the answer is an error; white space, however long, is not.
func TestReadRejectedBounds(t *testing.T) {
	t.Parallel()
	events := []event{{ID: "a"}}
	ok := []string{
		`{"x":` + strings.Repeat("[", maxAnswerDepth-1) + strings.Repeat("]", maxAnswerDepth-1) + `,"rejected":[{"id":"a","error":"e"}]}`,
		`{"x":"` + strings.Repeat("y", 3<<20) + `","rejected":[{"id":"a","error":"` + strings.Repeat("z", 3<<20) + `"}]}`,
		`{"rejected":` + strings.Repeat(" ", 3<<20) + `[{"id":"a","junk":[` + strings.Repeat("1,", 1<<20) + `1],"error":"e"}]}`,
		`{"rejected":[{"id":"a","error":"` + strings.Repeat(`\u00e9`, 1<<18) + `"}]}`,
	}
	for _, body := range ok {
		got, err := readRejected(strings.NewReader(body), events, noScrub)
		if err != nil || len(got) != 1 || got[0].ID != "a" {
			t.Errorf("readRejected(%.60q…) = %+v, %v; want a rejected", body, got, err)
		}
	}
	bad := []string{
		`{"x":` + strings.Repeat("[", maxAnswerDepth) + strings.Repeat("]", maxAnswerDepth) + `}`,
		`{"x":"` + strings.Repeat("y", maxAnswerToken+1) + `"}`,
		`{"x":` + strings.Repeat("1", maxAnswerToken+1) + `}`,
	}
	for _, body := range bad {
		if got, err := readRejected(strings.NewReader(body), events, noScrub); err == nil {
			t.Errorf("readRejected(%.60q…) = %+v, nil; want an error", body, got)
		}
	}
}
