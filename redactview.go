package main

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// Text in a payload's strings is often encoded once more: a redirect URL
// carries its query percent-encoded (access_token%3D…), a tool's output
// holds JSON with escapes of its own (token\u003d…, https:\/\/…), and
// either may be encoded twice (%253D). A rule that reads such text as it
// is sees no name=value and takes the D of %3D for a word. So the redactor
// reads, beside the text, a view of it with those escapes undone
// (scratch.decodeView), and maps what it finds there back to the bytes of
// the text (viewMap): the escaped secret is replaced whole.

// maxDecodes bounds how often a text is decoded: four undo JSON quoted in
// a URL that was encoded twice, and each is one pass over the text.
const maxDecodes = 4

// viewMap maps offsets in a decoded view to offsets in the text it was
// decoded from. The zero viewMap is the text itself.
type viewMap struct {
	at []int32 // at[i] is where the escape that gave view[i] starts in the text
	n  int     // the text's length: where the view's end maps to
}

// orig returns the offset in the text of offset i of the view.
func (m viewMap) orig(i int) int {
	switch {
	case m.at == nil:
		return i
	case i >= len(m.at):
		return m.n
	}
	return int(m.at[i])
}

// decodeView returns text with its percent-encoding (%XX) and backslash
// escapes (\", \\, \/, \n, \uXXXX, …) undone, as many times as they were
// applied, up to maxDecodes, and the map from the view back to text. It
// returns a nil view when text holds nothing to undo. The view lives in sc
// until the next call.
func (sc *scratch) decodeView(text []byte) ([]byte, viewMap) {
	sc.steps += len(text)
	if bytes.IndexByte(text, '%') < 0 && bytes.IndexByte(text, '\\') < 0 {
		return nil, viewMap{}
	}
	src, srcAt := text, []int32(nil)
	for k := range maxDecodes {
		b := k % 2 // the other buffer holds src
		dst, at, more, changed := decodeOnce(sc.view[b][:0], sc.at[b][:0], src, srcAt)
		sc.view[b], sc.at[b] = dst, at
		sc.steps += len(src)
		if !changed {
			break
		}
		src, srcAt = dst, at
		if !more {
			break
		}
	}
	if srcAt == nil {
		return nil, viewMap{}
	}
	return src, viewMap{srcAt, len(text)}
}

// decodeOnce appends src with one layer of escapes undone to dst, and to at
// where each byte came from in the original text (srcAt maps src there;
// nil when src is the text). It reports whether what it made still holds
// a '%' or a '\' (more to undo) and whether it undid anything.
func decodeOnce(dst []byte, at []int32, src []byte, srcAt []int32) (_ []byte, _ []int32, more, changed bool) {
	for i := 0; i < len(src); {
		// A run of bytes that no escape starts is copied whole, and
		// holds no '%' or '\' for a next pass to read.
		if j := i + escapeFree(src[i:]); j > i {
			dst = append(dst, src[i:j]...)
			if srcAt != nil {
				at = append(at, srcAt[i:j]...)
			} else {
				for k := i; k < j; k++ {
					at = append(at, int32(k))
				}
			}
			i = j
			continue
		}
		from := int32(i)
		if srcAt != nil {
			from = srcAt[i]
		}
		c, n := src[i], 1
		var r rune = -1
		switch {
		case c == '%' && i+2 < len(src) && isHex(src[i+1]) && isHex(src[i+2]):
			c, n = unhex(src[i+1])<<4|unhex(src[i+2]), 3
		case c == '\\' && i+1 < len(src):
			c, n, r = unbackslash(src[i:])
		}
		if n > 1 {
			changed = true
		}
		if r >= 0 {
			k := len(dst)
			dst = utf8.AppendRune(dst, r)
			for range len(dst) - k {
				at = append(at, from)
			}
		} else {
			dst = append(dst, c)
			at = append(at, from)
			more = more || c == '%' || c == '\\'
		}
		i += n
	}
	return dst, at, more, changed
}

// escapeFree returns how many bytes b starts with that are neither '%'
// nor '\', the bytes an escape starts with.
func escapeFree(b []byte) int {
	for i, c := range b {
		if c == '%' || c == '\\' {
			return i
		}
	}
	return len(b)
}

// unbackslash reads the escape at the start of b, a backslash: JSON's,
// and \' as a shell or a JavaScript string has it. It returns the byte it
// stands for, or a rune (r ≥ 0) for \uXXXX, and its length; n is 1 when
// the backslash escapes nothing.
func unbackslash(b []byte) (c byte, n int, r rune) {
	switch e := b[1]; e {
	case '"', '\\', '/', '\'':
		return e, 2, -1
	case 'n':
		return '\n', 2, -1
	case 'r':
		return '\r', 2, -1
	case 't':
		return '\t', 2, -1
	case 'b':
		return '\b', 2, -1
	case 'f':
		return '\f', 2, -1
	case 'u':
		if u, ok := hex4(b[2:]); ok {
			if utf16.IsSurrogate(u) {
				u = utf8.RuneError // each half of a pair: no secret holds one
			}
			return 0, 6, u
		}
	}
	return '\\', 1, -1
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
