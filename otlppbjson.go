package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// A payload becomes a protobuf AnyValue by one pass over its bytes: the
// token-by-token json.Decoder that appendAnyValuePB uses costs several
// times the rest of a batch's delivery. This scanner takes the JSON that
// enqueue checked; anything it does not expect makes it give up, and the
// payload goes the decoder's way (appendPayloadPB), which has the last
// word on what is not JSON.

// pbJSON scans one JSON document.
type pbJSON struct {
	data []byte
	i    int
	// ids are the top-level string values of sessionIDKeys, as
	// sessionID reads them, found on the way.
	ids [len(sessionIDKeys)]string
}

func (p *pbJSON) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// appendPayloadPBFast appends the AnyValue fields of payload; ok is false
// when the scanner gave up, and b is then to be discarded. session is
// what sessionID(payload) returns, read on the way.
func appendPayloadPBFast(b, payload []byte) (out []byte, session string, ok bool) {
	p := pbJSON{data: payload}
	out, ok = p.value(b, 0)
	if !ok {
		return b, "", false
	}
	p.skipSpace()
	if p.i != len(p.data) {
		return b, "", false
	}
	for _, id := range p.ids {
		if id != "" {
			return out, id, true
		}
	}
	return out, "", true
}

// maxScanDepth is the nesting the scanner follows; a deeper payload goes
// the decoder's way.
const maxScanDepth = 64

func (p *pbJSON) value(b []byte, depth int) ([]byte, bool) {
	p.skipSpace()
	if p.i >= len(p.data) || depth > maxScanDepth {
		return b, false
	}
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object(b, depth)
	case c == '[':
		return p.array(b, depth)
	case c == '"':
		s, ok := p.strBytes()
		if !ok {
			return b, false
		}
		return appendPBBytes(b, 1, s), true
	case c == 't' && bytes.HasPrefix(p.data[p.i:], []byte("true")):
		p.i += 4
		return appendPBVarint(b, 2, 1), true
	case c == 'f' && bytes.HasPrefix(p.data[p.i:], []byte("false")):
		p.i += 5
		return appendPBVarint(b, 2, 0), true
	case c == 'n' && bytes.HasPrefix(p.data[p.i:], []byte("null")):
		p.i += 4
		return b, true
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(b)
	}
	return b, false
}

func (p *pbJSON) object(b []byte, depth int) ([]byte, bool) {
	p.i++ // {
	ok := true
	b = appendPBMsg(b, 6, func(b []byte) []byte { // kvlist_value
		for first := true; ok; first = false {
			p.skipSpace()
			if p.i < len(p.data) && p.data[p.i] == '}' && first {
				p.i++
				return b
			}
			key, kok := p.strBytes()
			p.skipSpace()
			if !kok || p.i >= len(p.data) || p.data[p.i] != ':' {
				ok = false
				return b
			}
			p.i++
			at := p.i
			b = appendPBMsg(b, 1, func(b []byte) []byte {
				b = appendPBBytes(b, 1, key)
				return appendPBMsg(b, 2, func(b []byte) []byte {
					b, ok = p.value(b, depth+1)
					return b
				})
			})
			if depth == 0 && ok {
				p.noteID(key, at)
			}
			var closed bool
			if closed, ok = p.next(ok, '}'); closed {
				return b
			}
		}
		return b
	})
	return b, ok
}

func (p *pbJSON) array(b []byte, depth int) ([]byte, bool) {
	p.i++ // [
	ok := true
	b = appendPBMsg(b, 5, func(b []byte) []byte { // array_value
		for first := true; ok; first = false {
			p.skipSpace()
			if p.i < len(p.data) && p.data[p.i] == ']' && first {
				p.i++
				return b
			}
			b = appendPBMsg(b, 1, func(b []byte) []byte {
				b, ok = p.value(b, depth+1)
				return b
			})
			var closed bool
			if closed, ok = p.next(ok, ']'); closed {
				return b
			}
		}
		return b
	})
	return b, ok
}

// next reads what follows an object's member or an array's element: a
// comma (another comes), or closer (closed: the container ends here). ok
// is false for anything else, or when the item itself was not ok.
func (p *pbJSON) next(itemOK bool, closer byte) (closed, ok bool) {
	p.skipSpace()
	switch {
	case !itemOK || p.i >= len(p.data):
		return false, false
	case p.data[p.i] == ',':
		p.i++
		return false, true
	case p.data[p.i] == closer:
		p.i++
		return true, true
	}
	return false, false
}

// str reads a string. One without escapes, of valid UTF-8 and no control
// characters, is taken as it is; any other is decoded by encoding/json,
// whose rules (escapes, invalid UTF-8 replaced) it then follows exactly.
func (p *pbJSON) str() (string, bool) {
	raw, plain, ok := p.strRaw()
	if !ok || plain {
		return string(raw), ok
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// strBytes is str without a copy when the string is plain (no escapes,
// valid UTF-8): its bytes are the payload's own. A caller that keeps them
// past the payload copies them.
func (p *pbJSON) strBytes() ([]byte, bool) {
	raw, plain, ok := p.strRaw()
	if !ok || plain {
		return raw, ok
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// strRaw moves past a string literal. A plain one (no escapes, valid
// UTF-8) comes back as its contents; any other as the literal with its
// quotes, for encoding/json to decode.
func (p *pbJSON) strRaw() (raw []byte, plain, ok bool) {
	if p.i >= len(p.data) || p.data[p.i] != '"' {
		return nil, false, false
	}
	start := p.i
	plain = true
	for j := p.i + 1; j < len(p.data); j++ {
		switch c := p.data[j]; {
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			return nil, false, false
		case c == '"':
			p.i = j + 1
			if raw := p.data[start+1 : j]; plain && utf8.Valid(raw) {
				return raw, true, true
			}
			return p.data[start : j+1], false, true
		}
	}
	return nil, false, false
}

// number reads a number literal and appends it by appendNumber's rules.
func (p *pbJSON) number(b []byte) ([]byte, bool) {
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	lit := string(p.data[start:p.i])
	if !json.Valid([]byte(lit)) {
		return b, false
	}
	if !bytes.ContainsAny([]byte(lit), ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return appendPBVarint(b, 3, uint64(n)), true
		}
	} else if f, err := strconv.ParseFloat(lit, 64); err == nil && !math.IsInf(f, 0) {
		return appendPBFixed64(b, 4, math.Float64bits(f)), true
	}
	return appendPBString(b, 1, lit), true
}

// noteID keeps the value of a top-level key that names the session, when
// it is a string (at is where the value starts): the last string wins,
// as in sessionID.
func (p *pbJSON) noteID(key []byte, at int) {
	for i, k := range sessionIDKeys {
		if k != string(key) {
			continue
		}
		q := pbJSON{data: p.data, i: at}
		q.skipSpace()
		if s, ok := q.str(); ok {
			p.ids[i] = s
		}
	}
}
