package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
)

// OTLP traces, and the protobuf encoding of OTLP logs. Like otlp.go, the
// encoders are hand-written: the official protobuf types would cost the
// product about 1.9 MB and 0.45 ms on every hook's start-up (measured), for
// a handful of message types. integration/otel decodes what these write
// with the Collector's own pdata.

// otlpTracesPath is the OTLP/HTTP path for traces.
const otlpTracesPath = "/v1/traces"

// OTLP protocols, as OTEL_EXPORTER_OTLP_PROTOCOL names them.
const (
	protocolProtobuf = "http/protobuf"
	protocolJSON     = "http/json"
)

// spanKindInternal is SpanKind INTERNAL: the agent runs on this machine,
// in-process as far as the conventions are concerned.
const spanKindInternal = 1

// statusCodeError is Status.code ERROR.
const statusCodeError = 2

// encodeSpansJSON is the ExportTraceServiceRequest for spans in OTLP/JSON.
func (s *otlpSink) encodeSpansJSON(spans []traceSpan) []byte {
	b := make([]byte, 0, 512+len(spans)*600)
	b = append(b, `{"resourceSpans":[{"resource":{"attributes":[`...)
	b = s.appendResourceJSON(b)
	b = append(b, `]},"scopeSpans":[{"scope":{"name":"difflore","version":`...)
	b = appendJSONString(b, s.version)
	b = append(b, `},"spans":[`...)
	for i, sp := range spans {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"traceId":"`...)
		b = append(b, sp.TraceID...)
		b = append(b, `","spanId":"`...)
		b = append(b, sp.SpanID...)
		b = append(b, '"')
		if sp.Parent != "" {
			b = append(b, `,"parentSpanId":"`...)
			b = append(b, sp.Parent...)
			b = append(b, '"')
		}
		b = append(b, `,"name":`...)
		b = appendJSONString(b, sp.Name)
		b = append(b, `,"kind":`...)
		b = strconv.AppendInt(b, spanKindInternal, 10)
		b = append(b, `,"startTimeUnixNano":"`...)
		b = strconv.AppendInt(b, sp.Start, 10)
		b = append(b, `","endTimeUnixNano":"`...)
		b = strconv.AppendInt(b, sp.End, 10)
		b = append(b, `","attributes":[`...)
		for j, a := range sp.Attrs {
			if j > 0 {
				b = append(b, ',')
			}
			if a.IsBool {
				b = append(b, `{"key":`...)
				b = appendJSONString(b, a.Key)
				b = append(b, `,"value":{"boolValue":`+a.Value+`}}`...)
				continue
			}
			b = appendStringAttr(b, a.Key, a.Value)
		}
		b = append(b, ']')
		if sp.Error != "" {
			b = append(b, `,"status":{"code":`+strconv.Itoa(statusCodeError)+`,"message":`...)
			b = appendJSONString(b, sp.Error)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, "]}]}]}"...)
}

// appendResourceJSON appends the resource attributes that logs and spans
// share.
func (s *otlpSink) appendResourceJSON(b []byte) []byte {
	b = appendStringAttr(b, "service.name", "difflore")
	b = append(b, ',')
	b = appendStringAttr(b, "service.version", s.version)
	if s.hostname != "" {
		b = append(b, ',')
		b = appendStringAttr(b, "host.name", s.hostname)
	}
	return b
}

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
)

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendPBString(b []byte, field int, s string) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendPBBytes(b []byte, field int, s []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendPBFixed64(b []byte, field int, v uint64) []byte {
	b = appendTag(b, field, wireFixed64)
	return binary.LittleEndian.AppendUint64(b, v)
}

func appendPBVarint(b []byte, field int, v uint64) []byte {
	b = appendTag(b, field, wireVarint)
	return binary.AppendUvarint(b, v)
}

// appendPBHex appends a hex id as bytes; an empty or bad id is left out,
// as proto3 leaves out an empty field.
func appendPBHex(b []byte, field int, id string) []byte {
	var buf [16]byte // a trace id's length: no allocation for any id made here
	raw := buf[:]
	if len(id) > 2*len(buf) {
		raw = make([]byte, hex.DecodedLen(len(id)))
	}
	n, err := hex.Decode(raw, []byte(id))
	if err != nil || n == 0 {
		return b
	}
	return appendPBBytes(b, field, raw[:n])
}

// pbMsgReserve is the room left for a nested message's length, which is
// known only once the message is written: five varint bytes hold 32 GiB.
const pbMsgReserve = 5

// appendPBMsg appends a nested message that fn writes, with its length.
func appendPBMsg(b []byte, field int, fn func([]byte) []byte) []byte {
	b = appendTag(b, field, wireBytes)
	at := len(b)
	b = append(b, make([]byte, pbMsgReserve)...)
	b = fn(b)
	n := len(b) - at - pbMsgReserve
	var lb [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(lb[:], uint64(n))
	copy(b[at+l:], b[at+pbMsgReserve:])
	copy(b[at:], lb[:l])
	return b[:at+l+n]
}

// appendPBStringAttr appends a KeyValue with a string value.
func appendPBStringAttr(b []byte, field int, key, value string) []byte {
	return appendPBMsg(b, field, func(b []byte) []byte {
		b = appendPBString(b, 1, key)
		return appendPBMsg(b, 2, func(b []byte) []byte { return appendPBString(b, 1, value) })
	})
}

func (s *otlpSink) appendResourcePB(b []byte) []byte {
	return appendPBMsg(b, 1, func(b []byte) []byte {
		b = appendPBStringAttr(b, 1, "service.name", "difflore")
		b = appendPBStringAttr(b, 1, "service.version", s.version)
		if s.hostname != "" {
			b = appendPBStringAttr(b, 1, "host.name", s.hostname)
		}
		return b
	})
}

func (s *otlpSink) appendScopePB(b []byte) []byte {
	return appendPBMsg(b, 1, func(b []byte) []byte {
		b = appendPBString(b, 1, "difflore")
		return appendPBString(b, 2, s.version)
	})
}

// encodeSpansPB is the ExportTraceServiceRequest for spans in protobuf.
func (s *otlpSink) encodeSpansPB(spans []traceSpan) []byte {
	b := make([]byte, 0, 512+len(spans)*400)
	return appendPBMsg(b, 1, func(b []byte) []byte { // ResourceSpans
		b = s.appendResourcePB(b)
		return appendPBMsg(b, 2, func(b []byte) []byte { // ScopeSpans
			b = s.appendScopePB(b)
			for i := range spans {
				b = appendPBMsg(b, 2, func(b []byte) []byte { return appendSpanPB(b, &spans[i]) })
			}
			return b
		})
	})
}

func appendSpanPB(b []byte, sp *traceSpan) []byte {
	b = appendPBHex(b, 1, sp.TraceID)
	b = appendPBHex(b, 2, sp.SpanID)
	b = appendPBHex(b, 4, sp.Parent)
	b = appendPBString(b, 5, sp.Name)
	b = appendPBVarint(b, 6, spanKindInternal)
	b = appendPBFixed64(b, 7, uint64(sp.Start))
	b = appendPBFixed64(b, 8, uint64(sp.End))
	for _, a := range sp.Attrs {
		if a.IsBool {
			b = appendPBMsg(b, 9, func(b []byte) []byte {
				b = appendPBString(b, 1, a.Key)
				return appendPBMsg(b, 2, func(b []byte) []byte { return appendPBVarint(b, 2, boolInt(a.Value == "true")) })
			})
			continue
		}
		b = appendPBStringAttr(b, 9, a.Key, a.Value)
	}
	if sp.Error != "" {
		b = appendPBMsg(b, 15, func(b []byte) []byte {
			b = appendPBString(b, 2, sp.Error)
			return appendPBVarint(b, 3, statusCodeError)
		})
	}
	return b
}

func boolInt(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// encodeLogsPB is encode's ExportLogsServiceRequest in protobuf.
func (s *otlpSink) encodeLogsPB(events []event, observed int64, links map[string]spanLink) []byte {
	n := 512
	for _, e := range events {
		n += 2*len(e.Payload) + len(e.ID) + 2*len(e.Kind) + 200
	}
	b := make([]byte, 0, n)
	return appendPBMsg(b, 1, func(b []byte) []byte { // ResourceLogs
		b = s.appendResourcePB(b)
		return appendPBMsg(b, 2, func(b []byte) []byte { // ScopeLogs
			b = s.appendScopePB(b)
			for i := range events {
				b = appendPBMsg(b, 2, func(b []byte) []byte { return appendLogRecordPB(b, &events[i], observed, links) })
			}
			return b
		})
	})
}

func appendLogRecordPB(b []byte, e *event, observed int64, links map[string]spanLink) []byte {
	b = appendPBFixed64(b, 1, uint64(e.CreatedAt.UnixNano()))
	session, scanned := "", false
	b = appendPBMsg(b, 5, func(b []byte) []byte {
		out, id, ok := appendPayloadPBFast(b, e.Payload)
		if ok {
			session, scanned = id, true
			return out
		}
		return appendPayloadPB(b, e.Payload)
	})
	if !scanned {
		session = sessionID(e.Payload)
	}
	b = appendPBStringAttr(b, 6, "difflore.event.id", e.ID)
	b = appendPBStringAttr(b, 6, "difflore.event.kind", e.Kind)
	b = appendPBMsg(b, 6, func(b []byte) []byte {
		b = appendPBString(b, 1, "difflore.attempt")
		return appendPBMsg(b, 2, func(b []byte) []byte { return appendPBVarint(b, 3, uint64(int64(e.Attempt))) })
	})
	if session != "" {
		b = appendPBStringAttr(b, 6, "session.id", session)
	}
	if l, ok := links[e.ID]; ok {
		b = appendPBHex(b, 9, l.trace)
		b = appendPBHex(b, 10, l.span)
	}
	b = appendPBFixed64(b, 11, uint64(observed))
	return appendPBString(b, 12, e.Kind)
}

// appendPayloadPB appends the fields of an AnyValue for a payload, as
// appendPayloadValue does in JSON.
func appendPayloadPB(b []byte, payload []byte) []byte {
	if out, _, ok := appendPayloadPBFast(b, payload); ok {
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if out, err := appendAnyValuePB(b, dec); err == nil {
		if _, err := dec.Token(); err == io.EOF {
			return out
		}
	}
	return appendPBString(b, 1, string(payload))
}

// appendAnyValuePB reads one JSON value from dec and appends the fields of
// its AnyValue, by appendAnyValue's rules.
func appendAnyValuePB(b []byte, dec *json.Decoder) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return b, err
	}
	switch v := tok.(type) {
	case json.Delim:
		var ferr error
		switch v {
		case '{':
			b = appendPBMsg(b, 6, func(b []byte) []byte { // kvlist_value
				for dec.More() && ferr == nil {
					var key json.Token
					if key, ferr = dec.Token(); ferr != nil {
						return b
					}
					b = appendPBMsg(b, 1, func(b []byte) []byte {
						b = appendPBString(b, 1, key.(string))
						return appendPBMsg(b, 2, func(b []byte) []byte {
							b, ferr = appendAnyValuePB(b, dec)
							return b
						})
					})
				}
				return b
			})
		case '[':
			b = appendPBMsg(b, 5, func(b []byte) []byte { // array_value
				for dec.More() && ferr == nil {
					b = appendPBMsg(b, 1, func(b []byte) []byte {
						b, ferr = appendAnyValuePB(b, dec)
						return b
					})
				}
				return b
			})
		default:
			return b, strconvErr(v)
		}
		if ferr != nil {
			return b, ferr
		}
		_, err = dec.Token()
		return b, err
	case string:
		return appendPBString(b, 1, v), nil
	case bool:
		return appendPBVarint(b, 2, boolInt(v)), nil
	case nil:
		return b, nil
	case json.Number:
		lit := string(v)
		if !strings.ContainsAny(lit, ".eE") {
			if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
				return appendPBVarint(b, 3, uint64(n)), nil
			}
		} else if f, err := strconv.ParseFloat(lit, 64); err == nil && !math.IsInf(f, 0) {
			return appendPBFixed64(b, 4, math.Float64bits(f)), nil
		}
		return appendPBString(b, 1, lit), nil
	}
	return b, strconvErr(tok)
}

// strconvErr is the error for a token no JSON value starts with.
func strconvErr(tok any) error {
	return &json.UnsupportedValueError{Str: "unexpected token " + strconv.Quote(toString(tok))}
}

func toString(v any) string {
	if d, ok := v.(json.Delim); ok {
		return d.String()
	}
	return "?"
}
