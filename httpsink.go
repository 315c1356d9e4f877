package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// maxErrorBody bounds how much of an answer that is not a 2xx is read: only
// its start becomes the error text.
const maxErrorBody = 1 << 20

// maxAnswer bounds how much of a 2xx answer is read. Such an answer may name
// rejected events, so it is read to its end or not trusted at all: an answer
// that goes on past maxAnswer retries the batch. The bound is not what it
// costs in memory (readRejected reads it a token at a time, and
// answerGuard bounds the tokens and their nesting): it only stops
// an endpoint that never ends its answer, and leaves over 6 KiB of answer
// for each event of a full 10,000-event batch.
const maxAnswer = 64 << 20

// gzipWriters keeps gzip writers for reuse: a new one allocates several
// hundred KiB of compressor state, which showed in every batch's profile.
// They compress at gzip.BestSpeed: on a body of the hook fixtures (28 KB)
// that took 0.24 ms against the default level's 0.58 ms, for 6.4 KB sent
// instead of 5.2 KB, and the daemon compresses every batch it sends on the
// machine the agent runs on.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
	return zw
}}

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

// poster is what the plain and the OTLP endpoints share: one POST of an
// encoded batch with difflore's headers, gzip over 1 KiB, the bearer token,
// no redirects and a bounded answer.
type poster struct {
	url, shown string
	token      string
	agent      string
	client     *http.Client
	timeout    time.Duration
	maxAnswer  int64 // the most of a 2xx answer that is read
	// contentType is the body's media type; empty means JSON.
	contentType string
}

func newPoster(target, raw, token, version string) poster {
	return poster{
		url:   target,
		shown: redactURL(raw),
		token: token,
		agent: "difflore/" + version,
		client: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect is not followed: Go would turn a 301, 302 or 303
			// into a GET without the body, whose 200 would then count as
			// the delivery of events never sent; and one to plain http
			// would carry the token off TLS.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:   requestTimeout,
		maxAnswer: maxAnswer,
	}
}

func (p *poster) String() string { return p.shown }

// httpAnswer is an endpoint's HTTP answer, for a sink to classify.
type httpAnswer struct {
	status     int
	retryAfter string
	body       []byte // the start of an answer that is not a 2xx
}

// post sends body, the encoding of events, and returns the answer. The body
// of a 2xx answer is handed to readOK, which reads what the sink needs of
// it; the start of any other answer's body is kept for the error text. fail
// is set instead when there is no answer to classify: the request could not
// be made or sent, or a 2xx answer could not be read (readOK failed).
func (p *poster) post(ctx context.Context, body []byte, events []event, readOK func(io.Reader) error) (a httpAnswer, fail *result) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	gzipped := len(body) > gzipOver
	if gzipped {
		body = gzipBody(body)
	}
	// A request that cannot be built is a local misconfiguration, not the
	// batch's failure: it pauses delivery, as a refused token does, and
	// counts no attempt, so that it never turns the queue into dead
	// letters. The error never shows the token.
	if p.token != "" {
		if err := tokenProblem(p.token); err != nil {
			return httpAnswer{}, &result{verdict: paused, err: "the token cannot be sent: " + err.Error()}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return httpAnswer{}, &result{verdict: paused, err: p.scrub("build the request: " + err.Error())}
	}
	req.Header.Set("Content-Type", cmpOr(p.contentType, "application/json"))
	req.Header.Set("User-Agent", p.agent)
	req.Header.Set("Idempotency-Key", idempotencyKey(events))
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return httpAnswer{}, &result{verdict: retryLater, err: p.scrub(err.Error())}
	}
	defer resp.Body.Close()
	a = httpAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if a.status >= 200 && a.status < 300 {
		if err := readOK(&cappedReader{r: resp.Body, n: p.maxAnswer, limit: p.maxAnswer}); err != nil {
			// A 2xx whose body broke off, or went on past maxAnswer, may
			// have listed rejected events we did not read: acking the
			// batch could drop them. Send it again; the Idempotency-Key
			// lets the receiver deduplicate.
			return httpAnswer{}, &result{verdict: retryLater, status: a.status,
				err: bound(p.scrub(fmt.Sprintf("%d %s: read answer: %v", a.status, http.StatusText(a.status), err)))}
		}
		return a, nil
	}
	// The body of an error answer only becomes the error text: its start
	// is enough, and a read error leaves what came before it.
	a.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if loc := resp.Header.Get("Location"); a.status >= 300 && a.status < 400 && loc != "" {
		a.body = append([]byte("redirect to "+loc+" not followed; "), a.body...)
	}
	return a, nil
}

// scrub removes the token from text that came back from the endpoint or the
// network stack, so that it never reaches a log, an error or status.
func (p *poster) scrub(text string) string { return scrubToken(text, p.token) }

// httpSink posts batches to an ingest endpoint in difflore's own format.
type httpSink struct {
	poster
}

func (s *httpSink) send(ctx context.Context, events []event) result {
	var rejected []rejection
	a, fail := s.post(ctx, encodeBatch(events), events, func(body io.Reader) (err error) {
		rejected, err = readRejected(body, events, s.scrub)
		return err
	})
	if fail != nil {
		return *fail
	}
	r := classify(a.status, a.retryAfter, a.body, time.Now(), s.scrub)
	if r.verdict == delivered {
		r.rejected = rejected
	}
	return withPauseHint(r, s.token != "")
}

// withPauseHint adds to the error of an answer that pauses delivery what a
// person can do about it: the pause lasts until they do, and status and
// drain show this text.
func withPauseHint(r result, tokenSet bool) result {
	if r.verdict != paused || r.status == 0 {
		return r
	}
	var hint string
	switch {
	case (r.status == 401 || r.status == 403) && !tokenSet:
		hint = "no token is set: printf '%s\\n' \"$TOKEN\" | difflore config set token -"
	case r.status == 401 || r.status == 403:
		hint = "the endpoint refused the token: check it, or set a new one with 'difflore config set token -'"
	case r.status == 404:
		hint = "nothing answers at that path: check the endpoint's URL ('difflore config get endpoint')"
	case r.status >= 300 && r.status < 400:
		hint = "the endpoint moved and difflore follows no redirect: set the endpoint to where it leads"
	default:
		hint = "this server does not take these requests: check that the endpoint is the ingest URL"
	}
	r.err = bound(r.err + "; hint: " + hint)
	return r
}

// scrubToken replaces token in text, and the forms it takes when an endpoint
// echoes a request back: escaped as a JSON string (with or without "\/") or
// as part of a URL. A token of base64 characters differs in each.
func scrubToken(text, token string) string {
	if token == "" {
		return text
	}
	forms := []string{token, url.QueryEscape(token), url.PathEscape(token)}
	if j, err := json.Marshal(token); err == nil {
		forms = append(forms, string(j[1:len(j)-1]))
	}
	for _, f := range slices.Clone(forms) {
		forms = append(forms, strings.ReplaceAll(f, "/", `\/`))
	}
	for _, f := range forms {
		text = strings.ReplaceAll(text, f, "[redacted]")
	}
	return text
}

// classify maps an HTTP answer to a result, as the README's Delivery section
// says.
// The rejected events of a 2xx answer are readRejected's to find, as the
// answer is read; body is the start of any other answer.
func classify(status int, retryAfter string, body []byte, now time.Time, scrub func(string) string) result {
	r := result{status: status}
	switch {
	case status >= 200 && status < 300:
		r.verdict = delivered
		return r
	case status == 400 || status == 413 || status == 422:
		r.verdict = badBatch
	case status == 401 || status == 403 || status == 404, status >= 300 && status < 400:
		// An auth or address problem (a redirect is one too: the endpoint
		// moved) is fixed by a person, not by the events: pause, count
		// nothing.
		r.verdict = paused
	default:
		// 408, 429, 5xx and anything unexpected: try again later, counting
		// the attempt, so a strange answer ends as a dead letter, not a loop.
		r.verdict = retryLater
		r.retryAfter = parseRetryAfter(retryAfter, now)
	}
	r.err = fmt.Sprintf("%d %s", status, http.StatusText(status))
	if text := strings.TrimSpace(string(body)); text != "" {
		r.err += ": " + text
	}
	r.err = bound(scrub(r.err))
	return r
}

// cappedReader reads at most n bytes of r, and fails rather than ends when
// r has more: an answer cut at a size must not read as a complete one.
type cappedReader struct {
	r     io.Reader
	n     int64 // bytes left to read
	limit int64
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
	} else if errors.Is(err, strconv.ErrRange) && h[0] != '-' {
		// More seconds than an int64 holds is still a request to wait
		// long, not leave to retry at once.
		return maxRetryAfter
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, min(t.Sub(now), maxRetryAfter))
	}
	return 0
}
