package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// requestTimeout bounds one delivery request.
const requestTimeout = 15 * time.Second

// gzipOver is the body size above which requests are gzipped.
const gzipOver = 1 << 10

// maxErrorText bounds the part of an answer kept as an event's last error.
const maxErrorText = 2 << 10

// verdict is what an endpoint's answer means for the batch that was sent.
type verdict int

const (
	delivered  verdict = iota // 2xx: delivered, but for any rejected events
	retryLater                // 408, 429, 5xx, network error: send again later
	badBatch                  // 400, 413, 422: some event is at fault; split
	paused                    // 401, 403, 404: configuration or auth; pause
)

// rejection is one event a 2xx answer refused.
type rejection struct {
	ID        string `json:"id"`
	Error     string `json:"error"`
	Retryable bool   `json:"retryable"`
}

// result is an endpoint's answer to one batch.
type result struct {
	verdict    verdict
	status     int           // HTTP status, 0 for a network error or a file sink
	retryAfter time.Duration // from Retry-After, 0 when absent
	rejected   []rejection
	err        string // why it failed, scrubbed of the token and bounded
}

// sink delivers batches: an HTTP endpoint, or a file for local pipelines.
type sink interface {
	send(ctx context.Context, events []event) result
	String() string // the endpoint as it may be shown: no credentials
}

// parseEndpoint turns the configured endpoint into a sink. An empty endpoint
// gives nil: the daemon runs and keeps events queued. Plain http is refused
// for a host that is not loopback unless allowInsecure is set, since the
// token and the events would cross the network in clear.
func parseEndpoint(raw, token, version string, allowInsecure bool) (sink, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, usageError("endpoint %q: %v", redactURL(raw), err)
	}
	switch u.Scheme {
	case "file":
		p := u.Path
		if u.Opaque != "" {
			p = u.Opaque
		}
		if runtime.GOOS == "windows" && len(p) > 2 && p[0] == '/' && p[2] == ':' {
			p = p[1:] // file:///C:/x names C:/x
		}
		if p == "" {
			return nil, usageError("endpoint %q names no file", raw)
		}
		return &fileSink{path: filepath.FromSlash(p)}, nil
	case "http", "https":
		if u.Host == "" {
			return nil, usageError("endpoint %q has no host", redactURL(raw))
		}
		if u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()) {
			return nil, &exitError{code: 2, err: fmt.Errorf("endpoint %q is plain http to a host that is not loopback", redactURL(raw)),
				hint: "use https, or pass --allow-insecure if the network is trusted"}
		}
		return &httpSink{
			url:     u.String(),
			shown:   redactURL(raw),
			token:   token,
			agent:   "difflore/" + version,
			client:  &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
			timeout: requestTimeout,
		}, nil
	}
	return nil, usageError("endpoint %q: scheme must be http, https or file", redactURL(raw))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL drops credentials from an endpoint so it can be shown and logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	return u.String()
}

// appendEvent appends one event's wire object. The payload is copied as it
// was enqueued: re-encoding it would change its bytes.
func appendEvent(b []byte, e event) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, e.ID)
	b = append(b, `,"kind":`...)
	b = strconv.AppendQuote(b, e.Kind)
	b = append(b, `,"created_at":"`...)
	b = e.CreatedAt.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","attempt":`...)
	b = strconv.AppendInt(b, int64(e.Attempt), 10)
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, '}')
}

// encodeBatch is the request body: {"events":[…]}.
func encodeBatch(events []event) []byte {
	n := 16
	for _, e := range events {
		n += len(e.Payload) + len(e.ID) + len(e.Kind) + 80
	}
	b := make([]byte, 0, n)
	b = append(b, `{"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvent(b, e)
	}
	return append(b, "]}"...)
}

// idempotencyKey is the same whenever the same set of events is sent, in any
// order and after any crash, so that the receiver can deduplicate a batch.
func idempotencyKey(events []event) string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	slices.Sort(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return hex.EncodeToString(sum[:16])
}

// gzipWriters keeps gzip writers for reuse: a new one allocates several
// hundred KiB of compressor state, which showed in every batch's profile.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// gzipBody compresses a request body.
func gzipBody(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body)/4 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	zw.Write(body)
	zw.Close()
	zw.Reset(nil)
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// httpSink posts batches to an ingest endpoint.
type httpSink struct {
	url, shown string
	token      string
	agent      string
	client     *http.Client
	timeout    time.Duration
}

func (s *httpSink) String() string { return s.shown }

func (s *httpSink) send(ctx context.Context, events []event) result {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	body := encodeBatch(events)
	gzipped := len(body) > gzipOver
	if gzipped {
		body = gzipBody(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return result{verdict: retryLater, err: s.scrub(err.Error())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.agent)
	req.Header.Set("Idempotency-Key", idempotencyKey(events))
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return result{verdict: retryLater, err: s.scrub(err.Error())}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return classify(resp.StatusCode, resp.Header.Get("Retry-After"), answer, time.Now(), s.scrub)
}

// scrub removes the token from text that came back from the endpoint or the
// network stack, so that it never reaches a log, an error or status.
func (s *httpSink) scrub(text string) string {
	if s.token != "" {
		text = strings.ReplaceAll(text, s.token, "[redacted]")
	}
	return text
}

// classify maps an HTTP answer to a result, per DESIGN.md's answer table.
func classify(status int, retryAfter string, body []byte, now time.Time, scrub func(string) string) result {
	r := result{status: status}
	switch {
	case status >= 200 && status < 300:
		r.verdict = delivered
		r.rejected = parseRejected(body)
		for i := range r.rejected {
			r.rejected[i].Error = bound(scrub(r.rejected[i].Error))
		}
		return r
	case status == 400 || status == 413 || status == 422:
		r.verdict = badBatch
	case status == 401 || status == 403 || status == 404:
		r.verdict = paused
	default:
		// 408, 429, 5xx and anything unexpected: try again later, counting
		// the attempt, so a strange answer ends as a dead letter, not a loop.
		r.verdict = retryLater
		r.retryAfter = parseRetryAfter(retryAfter, now)
	}
	text := strings.TrimSpace(string(body))
	r.err = bound(scrub(fmt.Sprintf("%d %s: %s", status, http.StatusText(status), text)))
	return r
}

// parseRejected reads {"rejected":[…]} from a 2xx answer. An answer that is
// not such an object rejects nothing.
func parseRejected(body []byte) []rejection {
	var v struct {
		Rejected []rejection `json:"rejected"`
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	return slices.DeleteFunc(v.Rejected, func(r rejection) bool { return r.ID == "" })
}

// parseRetryAfter reads Retry-After in either form, seconds or an HTTP date,
// and returns 0 when it is absent or unreadable.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, min(t.Sub(now), maxRetryAfter))
	}
	return 0
}

// bound keeps the start of an error text.
func bound(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	s = s[:maxErrorText]
	for len(s) > 0 && !isRuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func isRuneStart(b byte) bool { return b < 0x80 || b >= 0xC0 }

// fileSink appends events as JSON lines to a file and syncs it before they
// count as delivered.
type fileSink struct {
	path string
}

func (s *fileSink) String() string { return "file:" + filepath.ToSlash(s.path) }

func (s *fileSink) send(_ context.Context, events []event) result {
	var b []byte
	for _, e := range events {
		b = appendEvent(b, e)
		b = append(b, '\n')
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return result{verdict: retryLater, err: err.Error()}
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return result{verdict: retryLater, err: err.Error()}
	}
	return result{verdict: delivered}
}
