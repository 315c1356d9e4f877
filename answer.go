package main

import (
	"bufio"
	"fmt"
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
