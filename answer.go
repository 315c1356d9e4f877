package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// maxAnswerDepth bounds the nesting of arrays and objects in a 2xx answer.
// An answer nests three deep (the object, "rejected", an entry); the
// decoder keeps a stack entry per open bracket, so an answer of nothing
// but '[' (60 MiB inflate from 60 KiB of gzip) cost gigabytes.
const maxAnswerDepth = 128

// maxAnswerToken bounds one string of a 2xx answer. A collector's
// errorMessage may list every record it refused and run past a MiB, so the
// bound is generous; what it costs in memory is answerKeep, not this.
const maxAnswerToken = 4 << 20

// answerKeep is how much of a string, a number or a literal of an answer
// reaches the decoder. A string is cut there (at an escape's end) and the
// rest skipped: error texts are kept to maxErrorText, an id longer than
// this names no event, and the decoder holds each token whole while it
// reads it. A number or literal longer than this is no answer at all.
const answerKeep = 64 << 10

// answerGuard passes a JSON answer on to the decoder as it streams in, with
// its nesting and its tokens bounded: past maxAnswerDepth or maxAnswerToken
// it fails, as a body that breaks off does, so that the answer acknowledges
// nothing. It also folds each run of white space outside strings into one
// space, since the decoder keeps a run whole while it looks past it. It
// only lexes: it tells strings from the rest, and leaves the grammar to
// the decoder.
type answerGuard struct {
	r        *bufio.Reader
	err      error
	depth    int
	inString bool
	escaped  bool // the last byte was the backslash of an escape
	hex      int  // hex digits of a \u escape still to come
	cut      bool // the rest of this string is skipped
	token    int  // bytes of the current string or literal so far
	space    bool // the last byte passed on was white space
}

func (g *answerGuard) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && g.err == nil {
		c, err := g.r.ReadByte()
		if err != nil {
			g.err = err
			break
		}
		pass, err := g.step(c)
		if err != nil {
			g.err = err
			break
		}
		if pass {
			p[n] = c
			n++
		}
	}
	if n > 0 {
		return n, nil
	}
	return 0, g.err
}

// step takes the next byte of the answer and says whether it goes on to
// the decoder.
func (g *answerGuard) step(c byte) (bool, error) {
	if g.inString {
		return g.stringByte(c)
	}
	if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
		g.token = 0
		pass := !g.space
		g.space = true
		return pass, nil
	}
	g.space = false
	switch c {
	case '"':
		g.inString, g.cut, g.token = true, false, 0
	case '{', '[':
		g.token = 0
		if g.depth++; g.depth > maxAnswerDepth {
			return false, fmt.Errorf("the answer nests deeper than %d", maxAnswerDepth)
		}
	case '}', ']':
		g.token = 0
		g.depth = max(0, g.depth-1)
	case ',', ':':
		g.token = 0
	default:
		if g.token++; g.token > answerKeep {
			return false, fmt.Errorf("a value of the answer runs past %d KiB", answerKeep>>10)
		}
	}
	return true, nil
}

// stringByte takes a byte inside a string.
func (g *answerGuard) stringByte(c byte) (bool, error) {
	if g.token++; g.token > maxAnswerToken {
		return false, fmt.Errorf("a string of the answer runs past %d MiB", maxAnswerToken>>20)
	}
	// A string is cut only between two characters, never inside an
	// escape, so that what the decoder gets is still a string.
	if !g.cut && g.token > answerKeep && !g.escaped && g.hex == 0 {
		g.cut = true
	}
	switch {
	case g.escaped:
		g.escaped = false
		if c == 'u' {
			g.hex = 4
		}
	case g.hex > 0:
		g.hex--
	case c == '\\':
		g.escaped = true
	case c == '"':
		g.inString = false
		return true, nil
	}
	return !g.cut, nil
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
