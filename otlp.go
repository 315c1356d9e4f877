package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OTLP/HTTP logs: an endpoint "otlp+http://host:4318" or "otlp+https://…"
// delivers each batch as one ExportLogsServiceRequest to <base>/v1/logs, so
// that an OpenTelemetry Collector (or any OTLP backend) receives the events
// as log records.
//
// The request is OTLP/JSON, hand-encoded here with the standard library:
// every OTLP/HTTP receiver must accept JSON as well as protobuf, and encoding
// it ourselves keeps the product free of the protobuf and OpenTelemetry
// modules, which would pull tens of dependencies into a hook's binary for
// one message type. The cost is that this file must follow the OTLP/JSON
// rules itself (64-bit integers as strings, lowerCamelCase field names,
// enums as numbers); the integration test in integration/otel checks it
// against the Collector's own receiver.

// otlpLogsPath is the OTLP/HTTP path for logs, appended to the base URL.
const otlpLogsPath = "/v1/logs"

// otlpSink posts batches as OTLP/HTTP logs, and the spans they close as
// OTLP/HTTP traces (spans.go).
type otlpSink struct {
	poster          // to <base>/v1/logs
	traces   poster // to <base>/v1/traces
	name     string // the sink's name in config.toml; keys its state in the outbox
	version  string // service.version
	hostname string // host.name; empty when the OS would not say
	now      func() time.Time
	protobuf bool // http/protobuf, else http/json
	logs     bool // the signals sent
	spans    *spanBuilder
	store    *spanStore // nil until the drainer hands over the outbox (useOutbox)
	// unsaved are the spans' changes of delivered batches not yet taken
	// for the outbox (takeState); nil for an entry that was dropped.
	// unsavedPrune is the limit of their latest sweep, 0 when none.
	unsaved      map[string]*spanEntry
	unsavedPrune int64
	// unwritten is what a settlement that failed did not write: the
	// next takes it (takeState).
	unwritten *keptState
	// taking is whether the last batch was delivered: then the next
	// one's log records and spans go at once (send).
	taking bool
	// acked are the events whose log records were acknowledged while
	// their batch was not delivered (otlpsignals.go).
	acked logsAcked
}

// otlpOptions are an OTLP sink's settings beyond its endpoint.
type otlpOptions struct {
	name         string // "default" for the top-level endpoint
	protocol     string // http/protobuf (the default) or http/json
	noLogs       bool   // signals without logs
	noTraces     bool   // signals without traces
	traceContent bool   // tool arguments and results in spans
}

// newOTLPSink makes a sink for an otlp+http or otlp+https endpoint u. The
// logs path is appended to the URL's path as OTLP's base-endpoint rule says,
// unless the path names it already.
func newOTLPSink(u *url.URL, raw, token, version string, opts otlpOptions) *otlpSink {
	base := *u
	base.Scheme = strings.TrimPrefix(u.Scheme, "otlp+")
	base.Path = strings.TrimSuffix(strings.TrimSuffix(base.Path, otlpLogsPath), "/")
	base.RawPath = ""
	logsURL, tracesURL := base, base
	logsURL.Path += otlpLogsPath
	tracesURL.Path += otlpTracesPath
	host, _ := os.Hostname()
	s := &otlpSink{
		// OTLP has no idempotency key of its own; the poster's header
		// costs nothing and lets a gateway in front of the collector
		// deduplicate a resent batch.
		poster:   newPoster(logsURL.String(), raw, token, version),
		traces:   newPoster(tracesURL.String(), raw, token, version),
		name:     cmpOr(opts.name, "default"),
		version:  version,
		hostname: host,
		now:      time.Now,
		protobuf: opts.protocol != protocolJSON,
		logs:     !opts.noLogs,
	}
	if !opts.noTraces {
		s.spans = newSpanBuilder(opts.traceContent)
	}
	if s.protobuf {
		s.poster.contentType, s.traces.contentType = "application/x-protobuf", "application/x-protobuf"
	}
	return s
}

// send posts the batch's log records and the spans it closed. The
// spans' state (what is open) changes only once both are delivered, and
// reaches the outbox in the transaction that settles the batch
// (takeState): a batch that is not delivered, or not settled (the daemon
// died), is built again, the same way, when it is sent again. A batch
// whose log records were acknowledged and whose spans were not is sent
// again for its spans alone (otlpsignals.go).
//
// While the endpoint takes both signals (the last batch was delivered)
// the two requests go at once, which hides one round trip; otherwise the
// spans go only after the log records are acknowledged. A batch whose
// log records are refused is not delivered whatever the spans' answer,
// so spans sent beside them go again with the batch, under the same ids:
// once for the first batch refused, as the requests after it are one
// after the other.
func (s *otlpSink) send(ctx context.Context, events []event) result {
	now := s.now()
	var batch *spanBatch
	if s.spans != nil {
		batch = s.spans.build(events, now)
	}
	var spansAnswer chan result
	postSpans := func() result {
		var body []byte
		if s.protobuf {
			body = s.encodeSpansPB(batch.spans)
		} else {
			body = s.encodeSpansJSON(batch.spans)
		}
		return s.postOTLP(ctx, &s.traces, body, events, "spans")
	}
	hasSpans := batch != nil && len(batch.spans) > 0
	if hasSpans && s.logs && s.taking {
		spansAnswer = make(chan result, 1)
		go func() { spansAnswer <- postSpans() }()
	}
	r := result{verdict: delivered}
	var logged []event // whose log records this send had acknowledged
	if s.logs {
		todo := s.logsToSend(events)
		var links map[string]spanLink
		if batch != nil {
			links = batch.links
		}
		if len(todo) > 0 {
			var body []byte
			if s.protobuf {
				body = s.encodeLogsPB(todo, now.UnixNano(), links)
			} else {
				body = s.encodeLinked(todo, now, links)
			}
			r = s.postOTLP(ctx, &s.poster, body, todo, "log records")
		}
		if r.verdict == delivered {
			logged = todo
		}
	}
	if hasSpans {
		var rt result
		switch {
		case spansAnswer != nil:
			rt = <-spansAnswer
		case r.verdict == delivered:
			rt = postSpans()
		}
		if r.verdict == delivered {
			if rt.verdict == delivered {
				rt.unidentified += r.unidentified
				rt.err = bound(strings.TrimPrefix(r.err+"; "+rt.err, "; "))
				rt.err = strings.TrimSuffix(rt.err, "; ")
			}
			r = rt
		}
	}
	if batch != nil {
		if r.verdict != delivered {
			s.spans.st.rollback()
			if len(logged) > 0 && s.store != nil {
				s.noteLogsAcked(logged, now)
			}
		} else {
			s.commitSpans(batch.swept)
		}
	}
	if r.verdict == delivered {
		s.forgetLogsAcked(events)
	}
	s.taking = r.verdict == delivered
	return r
}

// postOTLP posts one OTLP request and classifies the answer; what names
// the records in a partial success's report ("log records", "spans").
func (s *otlpSink) postOTLP(ctx context.Context, p *poster, body []byte, events []event, what string) result {
	var partial partialSuccess
	a, fail := p.post(ctx, body, events, func(body io.Reader) (err error) {
		partial, err = readPartialSuccess(body)
		return err
	})
	if fail != nil {
		return *fail
	}
	r := withPauseHint(classifyOTLP(a.status, a.retryAfter, a.body, time.Now(), s.scrub), s.token != "")
	if r.verdict == delivered {
		r.unidentified, r.err = partial.rejected, bound(s.scrub(partial.report(len(events), what)))
	}
	return r
}

// encode is the ExportLogsServiceRequest for events in OTLP/JSON: one
// resource (this difflore on this host), one scope, one log record per
// event. observed is the send time, the record's observedTimeUnixNano.
func (s *otlpSink) encode(events []event, observed time.Time) []byte {
	return s.encodeLinked(events, observed, nil)
}

// encodeLinked is encode with each event's span, from links, on its
// record.
func (s *otlpSink) encodeLinked(events []event, observed time.Time, links map[string]spanLink) []byte {
	n := 512
	for _, e := range events {
		// AnyValue wrapping roughly doubles a payload; the rest is the
		// record's fixed fields.
		n += 2*len(e.Payload) + len(e.ID) + 2*len(e.Kind) + 320
	}
	b := make([]byte, 0, n)
	b = append(b, `{"resourceLogs":[{"resource":{"attributes":[`...)
	b = s.appendResourceJSON(b)
	b = append(b, `]},"scopeLogs":[{"scope":{"name":"difflore","version":`...)
	b = appendJSONString(b, s.version)
	b = append(b, `},"logRecords":[`...)
	obs := strconv.FormatInt(observed.UnixNano(), 10)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLogRecord(b, e, obs)
		if l, ok := links[e.ID]; ok {
			// The record's closing brace becomes its span's ids.
			b = append(b[:len(b)-1], `,"traceId":"`+l.trace+`","spanId":"`+l.span+`"}`...)
		}
	}
	return append(b, "]}]}]}"...)
}

// appendLogRecord appends one event as a LogRecord. The kind goes both into
// eventName (OTLP 1.5 and later) and into an attribute, since older
// receivers drop the field they do not know and many backends index only
// attributes.
func appendLogRecord(b []byte, e event, observedNano string) []byte {
	b = append(b, `{"timeUnixNano":"`...)
	b = strconv.AppendInt(b, e.CreatedAt.UnixNano(), 10)
	b = append(b, `","observedTimeUnixNano":"`...)
	b = append(b, observedNano...)
	b = append(b, `","eventName":`...)
	b = appendJSONString(b, e.Kind)
	b = append(b, `,"body":`...)
	b = appendPayloadValue(b, e.Payload)
	b = append(b, `,"attributes":[`...)
	b = appendStringAttr(b, "difflore.event.id", e.ID)
	b = append(b, ',')
	b = appendStringAttr(b, "difflore.event.kind", e.Kind)
	b = append(b, `,{"key":"difflore.attempt","value":{"intValue":"`...)
	b = strconv.AppendInt(b, int64(e.Attempt), 10)
	b = append(b, `"}}`...)
	if id := sessionID(e.Payload); id != "" {
		b = append(b, ',')
		b = appendStringAttr(b, "session.id", id)
	}
	return append(b, "]}"...)
}

// sessionIDKeys are the top-level payload fields that name the agent's
// session, in order of preference: session_id (Claude Code, Gemini CLI,
// Codex hooks, Qwen Code, Factory Droid, Copilot CLI's PascalCase hooks,
// VS Code), conversation_id (Cursor), thread-id (Codex's notify),
// sessionId (Copilot CLI's camelCase hooks), taskId (Cline, whose task is
// its conversation), sessionID (difflore's OpenCode, Kilo and Pi plugins),
// trajectory_id (Windsurf's Cascade). The agents' own OpenTelemetry events
// carry the same id as session.id, so a backend joins difflore's records
// to them. Kiro's hooks carry no session at all: its events go without
// session.id rather than under one difflore made up, which a backend would
// take for the agent's own.
var sessionIDKeys = [...]string{"session_id", "conversation_id", "thread-id", "sessionId", "taskId", "sessionID", "trajectory_id"}

// sessionID returns the session id at the top level of a payload, empty
// when there is none (or it is not a string). Most payloads are skipped by
// a byte search; the others are scanned key by key without decoding the
// values of other keys.
func sessionID(payload []byte) string {
	found := false
	for _, k := range sessionIDKeys {
		if bytes.Contains(payload, []byte(`"`+k+`"`)) {
			found = true
			break
		}
	}
	if !found {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	var ids [len(sessionIDKeys)]string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		i := slices.Index(sessionIDKeys[:], tok.(string))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ""
		}
		if i >= 0 && len(raw) > 0 && raw[0] == '"' {
			json.Unmarshal(raw, &ids[i]) // a string literal json.Decoder read always decodes
		}
	}
	// A payload that is not one whole object is sent as a string (see
	// appendPayloadValue): it has no fields to speak of.
	if _, err := dec.Token(); err != nil {
		return ""
	}
	if _, err := dec.Token(); err != io.EOF {
		return ""
	}
	for _, id := range ids {
		if id != "" {
			return id
		}
	}
	return ""
}

// appendStringAttr appends a KeyValue with a string value.
func appendStringAttr(b []byte, key, value string) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"value":{"stringValue":`...)
	b = appendJSONString(b, value)
	return append(b, "}}"...)
}

// appendJSONString appends s as a JSON string. (strconv.Quote is not JSON:
// it writes \x escapes.)
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendPayloadValue appends an enqueued payload as an OTLP AnyValue. The
// payload was checked to be one JSON value when it was enqueued; should it
// still not decode, it is sent as the string it is, rather than holding up
// the batch for an event no retry can mend.
func appendPayloadValue(b []byte, payload []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if out, err := appendAnyValue(b, dec); err == nil {
		if _, err := dec.Token(); err == io.EOF {
			return out
		}
	}
	b = append(b, `{"stringValue":`...)
	b = appendJSONString(b, string(payload))
	return append(b, '}')
}

// appendAnyValue reads one JSON value from dec and appends it as an OTLP
// AnyValue, keeping the order of object keys:
//
//	object  → kvlistValue      array → arrayValue
//	string  → stringValue      true, false → boolValue
//	null    → {} (an empty AnyValue)
//	integer → intValue, a decimal string as OTLP/JSON wants for 64 bits
//	other numbers → doubleValue
//
// An integer beyond int64, or a number beyond float64, has no OTLP number
// type that holds it; it becomes a stringValue with its digits as written,
// so that nothing is rounded away.
func appendAnyValue(b []byte, dec *json.Decoder) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return b, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			b = append(b, `{"kvlistValue":{"values":[`...)
			for i := 0; dec.More(); i++ {
				key, err := dec.Token()
				if err != nil {
					return b, err
				}
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"key":`...)
				b = appendJSONString(b, key.(string))
				b = append(b, `,"value":`...)
				if b, err = appendAnyValue(b, dec); err != nil {
					return b, err
				}
				b = append(b, '}')
			}
			b = append(b, "]}}"...)
		case '[':
			b = append(b, `{"arrayValue":{"values":[`...)
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b = append(b, ',')
				}
				if b, err = appendAnyValue(b, dec); err != nil {
					return b, err
				}
			}
			b = append(b, "]}}"...)
		default:
			return b, fmt.Errorf("unexpected %q", v)
		}
		// The closing delimiter.
		_, err = dec.Token()
		return b, err
	case string:
		b = append(b, `{"stringValue":`...)
		b = appendJSONString(b, v)
		return append(b, '}'), nil
	case bool:
		return append(b, `{"boolValue":`+strconv.FormatBool(v)+`}`...), nil
	case nil:
		return append(b, "{}"...), nil
	case json.Number:
		return appendNumber(b, string(v)), nil
	}
	return b, fmt.Errorf("unexpected token %v", tok)
}

// appendNumber appends a JSON number literal as an AnyValue; see
// appendAnyValue for the rules.
func appendNumber(b []byte, lit string) []byte {
	if !strings.ContainsAny(lit, ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			b = append(b, `{"intValue":"`...)
			b = strconv.AppendInt(b, n, 10)
			return append(b, `"}`...)
		}
	} else if f, err := strconv.ParseFloat(lit, 64); err == nil && !math.IsInf(f, 0) {
		b = append(b, `{"doubleValue":`...)
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
		return append(b, '}')
	}
	b = append(b, `{"stringValue":`...)
	b = appendJSONString(b, lit)
	return append(b, '}')
}

// classifyOTLP maps an OTLP/HTTP answer to a result. OTLP's rules differ from
// the README's Delivery section in two places:
//
//   - Only 429, 502, 503 and 504 are retryable in OTLP (408 too, as in the
//     table, since it says the request timed out, not that it was wrong).
//     Any other 5xx "MUST NOT be retried": the collector answers 500 when
//     its pipeline refused the data for good. Such a batch is split like a
//     400, so that only the events at fault end as dead letters, where a
//     person can look at them and retry them.
//   - A 200 may carry partialSuccess with rejectedLogRecords, a count: OTLP
//     does not say which records were refused, and says the client must not
//     retry them. So the whole batch counts as delivered (retrying would
//     resend the accepted ones too, and dead-lettering would invent which
//     were refused); the count and the server's errorMessage go into the
//     result's error, hence the log and the last error in status. The
//     sink reads them from the answer (readPartialSuccess), not classifyOTLP.
//
// Other 4xx than those of the table say the request, not the data, is wrong
// for this server (405, 415: not an OTLP receiver, or a different one): like
// 401, 403 and 404 they pause delivery rather than dead-letter every event.
func classifyOTLP(status int, retryAfter string, body []byte, now time.Time, scrub func(string) string) result {
	switch {
	case status >= 200 && status < 300:
		return result{verdict: delivered, status: status}
	case status == 408 || status == 429 || status == 502 || status == 503 || status == 504:
		// Retried as by the plain HTTP sink, honouring Retry-After.
	case status >= 500:
		r := classify(status, "", otlpStatusMessage(body), now, scrub)
		r.verdict = badBatch
		return r
	case status >= 400 && status != 400 && status != 413 && status != 422:
		r := classify(status, "", otlpStatusMessage(body), now, scrub)
		r.verdict = paused
		return r
	}
	return classify(status, retryAfter, otlpStatusMessage(body), now, scrub)
}

// partialSuccess is what a 2xx OTLP answer says beyond "accepted".
type partialSuccess struct {
	rejected int
	message  string // errorMessage
}

// readPartialSuccess reads an ExportLogsServiceResponse as it streams in,
// like the plain endpoint's rejections (readObject): an errorMessage may
// list every refused record and run past any fixed size, and an answer cut
// at one read as a plain success that reported nothing. An answer that is
// not JSON (empty, or protobuf from a server that ignored our Content-Type)
// is a plain success: a 200 is what OTLP defines as one. One that starts as
// JSON and cannot be read to its end is an error, and the batch is sent
// again, as for the plain endpoint.
func readPartialSuccess(body io.Reader) (partialSuccess, error) {
	var ps partialSuccess
	err := readObject(body, func(dec *json.Decoder, key string, first json.Token) error {
		if key != "partialSuccess" || first != json.Delim('{') {
			return skipValue(dec, first)
		}
		for dec.More() {
			field, err := dec.Token()
			if err != nil {
				return err
			}
			v, err := dec.Token()
			if err != nil {
				return err
			}
			switch v := v.(type) {
			case string: // int64 is a string in OTLP/JSON
				if field == "rejectedLogRecords" || field == "rejectedSpans" {
					ps.rejected, _ = strconv.Atoi(v)
				} else if field == "errorMessage" {
					ps.message = v
				}
			case json.Number: // some servers write a number
				if field == "rejectedLogRecords" || field == "rejectedSpans" {
					ps.rejected, _ = strconv.Atoi(v.String())
				}
			default:
				if err := skipValue(dec, v); err != nil {
					return err
				}
			}
		}
		_, err := dec.Token() // }
		return err
	})
	return ps, err
}

// report is the message for the log and status, empty when the answer is a
// plain success. A server may also send an errorMessage with no rejections,
// as a warning; it is kept the same way.
func (ps partialSuccess) report(sent int, what string) string {
	switch {
	case ps.rejected > 0:
		msg := fmt.Sprintf("partial success: the endpoint rejected %d of %d %s without naming them; not retried, as OTLP requires", ps.rejected, sent, what)
		if ps.message != "" {
			msg += ": " + ps.message
		}
		return msg
	case ps.message != "":
		return "partial success with no rejected records: " + ps.message
	}
	return ""
}

// otlpStatusMessage shortens an OTLP error answer, a google.rpc.Status
// {"code":…,"message":…}, to its message; other answers are kept as they are.
func otlpStatusMessage(body []byte) []byte {
	var st struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal(body, &st) != nil || st.Message == nil {
		return body
	}
	return []byte(*st.Message)
}
