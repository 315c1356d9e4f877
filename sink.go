package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
	return parseEndpointOpts(raw, token, version, allowInsecure, otlpOptions{})
}

// parseEndpointOpts is parseEndpoint with an OTLP endpoint's settings.
func parseEndpointOpts(raw, token, version string, allowInsecure bool, otlp otlpOptions) (sink, error) {
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
				hint: "use https, or, if the network is trusted, pass --allow-insecure or run 'difflore config set allow_insecure true'"}
		}
		return &httpSink{newPoster(u.String(), raw, token, version)}, nil
	case "otlp+http", "otlp+https":
		if u.Host == "" {
			return nil, usageError("endpoint %q has no host", redactURL(raw))
		}
		if u.Scheme == "otlp+http" && !allowInsecure && !isLoopback(u.Hostname()) {
			return nil, &exitError{code: 2, err: fmt.Errorf("endpoint %q is plain http to a host that is not loopback", redactURL(raw)),
				hint: "use otlp+https, or, if the network is trusted, pass --allow-insecure or run 'difflore config set allow_insecure true'"}
		}
		return newOTLPSink(u, raw, token, version, otlp), nil
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

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, fmt.Errorf("the answer goes on past %d bytes", c.limit)
	}
	p = p[:min(int64(len(p)), c.n)]
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
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
