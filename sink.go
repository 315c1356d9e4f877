package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// eventOverhead bounds the bytes appendEvent adds to an event's payload, id
// and kind (field names, quotes, the timestamp, the attempt number and the
// separating comma: 82 bytes and the attempt's digits), so that claim can cut
// a batch at the body size without encoding it.
const eventOverhead = 100

// batchFrame is the size of {"events":[]} around the events.
const batchFrame = len(`{"events":[]}`)

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
	// unidentified counts records a 2xx answer refused without naming
	// them (OTLP's partialSuccess); they are not retried, and err says so.
	unidentified int
	err          string // why it failed, scrubbed of the token and bounded
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
	if !strings.Contains(raw, ":/") && !strings.HasPrefix(raw, "file:") {
		// "host:8080/ingest" parses as a URL of scheme "host", or not at
		// all; either way what is missing is the scheme.
		return nil, &exitError{code: 2, err: fmt.Errorf("endpoint %q has no scheme", redactURL(raw)),
			hint: fmt.Sprintf("write it in full, as in https://%s (or http://, otlp+https://, file:)", strings.TrimPrefix(redactURL(raw), "//"))}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only
		// what is wrong with it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
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
			return nil, usageError("endpoint %q names no file", redactURL(raw))
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
		return &httpSink{newPoster(u.String(), raw, token, version)}, nil
	case "otlp+http", "otlp+https":
		if u.Host == "" {
			return nil, usageError("endpoint %q has no host", redactURL(raw))
		}
		if u.Scheme == "otlp+http" && !allowInsecure && !isLoopback(u.Hostname()) {
			return nil, &exitError{code: 2, err: fmt.Errorf("endpoint %q is plain http to a host that is not loopback", redactURL(raw)),
				hint: "use otlp+https, or pass --allow-insecure if the network is trusted"}
		}
		return newOTLPSink(u, raw, token, version), nil
	}
	return nil, usageError("endpoint %q: scheme must be http, https, otlp+http, otlp+https or file", redactURL(raw))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL drops credentials from an endpoint so it can be shown and
// logged: the user and password, and the values of a query string, where
// ingest services often take an API key.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			q.Set(k, "redacted")
		}
		u.RawQuery = q.Encode()
	}
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
	req.Header.Set("Content-Type", "application/json")
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
	text := strings.TrimSpace(string(body))
	r.err = bound(scrub(fmt.Sprintf("%d %s: %s", status, http.StatusText(status), text)))
	return r
}

// readRejected reads the events a 2xx answer rejects, {"rejected":[{"id",
// "error","retryable"}]}, as the answer streams in: a rejection list for a
// batch of thousands runs to megabytes (the error texts are free), so the
// answer is neither cut at a size nor held whole. Only entries that name an
// event of the batch are kept, one per event, each error scrubbed of the
// token and bounded; everything else is skipped token by token.
//
// An answer that is not a JSON object (empty, "ok", a page of HTML) rejects
// nothing, and neither does a "rejected" that is not a list or an entry
// without an id: none of them names an event. But an object that cannot be
// read to its closing brace (see readObject) returns an error, and the
// batch is sent again whole: what was not read may have rejected any event.
func readRejected(body io.Reader, events []event, scrub func(string) string) ([]rejection, error) {
	inBatch := make(map[string]bool, len(events))
	for _, e := range events {
		inBatch[e.ID] = true
	}
	var rejected []rejection
	at := map[string]int{} // index in rejected by id: a later entry wins
	err := readObject(body, func(dec *json.Decoder, key string, first json.Token) error {
		if key != "rejected" || first != json.Delim('[') {
			return skipValue(dec, first)
		}
		for dec.More() {
			rj, err := readRejection(dec)
			if err != nil {
				return err
			}
			if !inBatch[rj.ID] {
				continue
			}
			rj.Error = bound(scrub(rj.Error))
			if i, ok := at[rj.ID]; ok {
				rejected[i] = rj
				continue
			}
			at[rj.ID] = len(rejected)
			rejected = append(rejected, rj)
		}
		_, err := dec.Token() // ]
		return err
	})
	if err != nil {
		return nil, err
	}
	return rejected, nil
}

// readRejection reads one entry of a "rejected" list a token at a time,
// rather than decoding it whole: an entry may carry fields of any size
// besides its own. Keys match as encoding/json matches them, ignoring case.
// A field of the wrong type is skipped and leaves the others read, and an
// entry that is not an object names no event.
func readRejection(dec *json.Decoder) (rejection, error) {
	var rj rejection
	tok, err := dec.Token()
	if err != nil {
		return rj, err
	}
	if tok != json.Delim('{') {
		return rj, skipValue(dec, tok)
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return rj, err
		}
		v, err := dec.Token()
		if err != nil {
			return rj, err
		}
		k, _ := key.(string)
		s, isString := v.(string)
		b, isBool := v.(bool)
		switch {
		case strings.EqualFold(k, "id") && isString:
			rj.ID = s
		case strings.EqualFold(k, "error") && isString:
			rj.Error = s
		case strings.EqualFold(k, "retryable") && isBool:
			rj.Retryable = b
		default:
			if err := skipValue(dec, v); err != nil {
				return rj, err
			}
		}
	}
	_, err = dec.Token() // }
	return rj, err
}

// readObject reads a 2xx answer that is a JSON object one member at a time,
// as it streams in: member gets each key and the first token of its value,
// and reads the rest of the value or skips it (skipValue). An answer that
// is not a JSON object (empty, text, HTML, protobuf) is not read at all. An
// object that cannot be read to its closing brace is an error: the body
// broke off, went on past maxAnswer (cappedReader), or is not JSON after
// all, or past the bounds of its nesting or its tokens (answerGuard). What
// comes after the closing brace is not read.
func readObject(body io.Reader, member func(dec *json.Decoder, key string, first json.Token) error) error {
	br := bufio.NewReader(body)
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if c != '{' {
			return nil
		}
		br.UnreadByte()
		break
	}
	dec := json.NewDecoder(&answerGuard{r: br})
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return err
		}
		first, err := dec.Token()
		if err != nil {
			return err
		}
		if err := member(dec, key.(string), first); err != nil {
			return err
		}
	}
	_, err := dec.Token() // }
	return err
}

// skipValue reads past the rest of a JSON value whose first token is tok,
// one token at a time, so that no part of an answer is held whole.
func skipValue(dec *json.Decoder, tok json.Token) error {
	for depth := 0; ; {
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = dec.Token(); err != nil {
			return err
		}
	}
}

// cappedReader reads at most n bytes of r, and fails rather than ends when
// r has more: an answer cut at a size must not read as a complete one.
type cappedReader struct {
	r     io.Reader
	n     int64 // bytes left to read
	limit int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, fmt.Errorf("the answer goes on past %d bytes", c.limit)
	}
	p = p[:min(int64(len(p)), c.n)]
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
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

// bound keeps the start of an error text, at most maxErrorText bytes with
// the ellipsis that marks the cut.
func bound(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	// The cut may split a rune; dropping invalid bytes removes its
	// leading part too, which trimming continuation bytes alone did not.
	return strings.ToValidUTF8(s[:maxErrorText-len("…")], "") + "…"
}

// fileSink appends events as JSON lines to a file and syncs it before they
// count as delivered.
type fileSink struct {
	path string
}

func (s *fileSink) String() string { return "file:" + filepath.ToSlash(s.path) }

func (s *fileSink) send(_ context.Context, events []event) result {
	var b []byte
	for _, e := range events {
		start := len(b)
		b = appendEvent(b, e)
		oneLine(b[start:])
		b = append(b, '\n')
	}
	// O_APPEND keeps each batch whole against another program appending
	// to the same file; reading is for the last byte (appendLines).
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return result{verdict: retryLater, err: err.Error()}
	}
	err = appendLines(f, s.path, b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return result{verdict: retryLater, err: err.Error()}
	}
	return result{verdict: delivered}
}

// oneLine turns the line breaks of an encoded event into spaces, in place,
// so that a payload a hook pretty-printed still takes one line of a file:
// endpoint. Its value is unchanged: JSON allows a raw line break only as
// white space between tokens, never inside a string.
func oneLine(b []byte) {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
}

// appendLines appends lines to f, the file at path, and syncs them, so that
// every line of the file stays one JSON value:
//
//   - A batch starts on a line of its own: when the file does not end in a
//     newline (another writer's line, or one a crash cut short), one comes
//     first, rather than gluing the batch's first event onto that line.
//   - A write or sync that fails (a full disk, a size limit) is undone: the
//     file is cut back to where the batch began, so no torn line is left
//     for the retried batch to follow. Only when another writer appended
//     after the batch is the file left as it is, since its lines are not
//     ours to cut; the next batch then still starts on a fresh line.
func appendLines(f *os.File, path string, lines []byte) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	start := fi.Size()
	if start > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], start-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			lines = append([]byte{'\n'}, lines...)
		}
	}
	n, err := f.Write(lines)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if uerr := undoAppend(f, path, start, start+int64(n)); uerr != nil {
			return fmt.Errorf("%w (and the part written stays: %v)", err, uerr)
		}
		return err
	}
	return nil
}

// undoAppend cuts the file f back to size start, if it is still end bytes
// long. It truncates through a handle of its own, opened without O_APPEND:
// Windows does not let a handle opened for appending set the file's end.
func undoAppend(f *os.File, path string, start, end int64) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() != end {
		return err // nothing we wrote, or another writer wrote after it
	}
	g, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer g.Close()
	if gi, err := g.Stat(); err != nil || !os.SameFile(fi, gi) {
		return fmt.Errorf("%q was replaced", path)
	}
	if err := g.Truncate(start); err != nil {
		return err
	}
	return g.Sync()
}
