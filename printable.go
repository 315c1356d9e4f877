package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// printable escapes what a terminal would act on in text that came from
// outside (an endpoint's answer, an event's id or kind, a file's contents),
// so that printing it can neither move the cursor, retitle the window,
// write the clipboard, fake a line of difflore's own output nor reorder
// what follows it: C0 controls (line breaks and tabs too: the text is one
// field of one line), DEL, C1 controls, invalid UTF-8 (an 8-bit C1 byte
// among them), the line and paragraph separators and the Unicode bidi
// overrides and isolates. Everything else is kept as it is.
func printable(s string) string {
	i := strings.IndexFunc(s, needsEscape)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// needsEscape reports whether printable escapes r.
func needsEscape(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi
		return true
	}
	return false
}

// printableLines is printable for text of several lines, such as an error
// and its hint: each line is escaped, and the line breaks kept.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// writeJSON writes v as indented JSON, or one line when compact. It also
// escapes what encoding/json leaves raw and a terminal still acts on (DEL,
// C1 controls, the bidi overrides: needsEscape), as \uXXXX: these runes
// only ever occur inside JSON strings, and the escape is the same string
// to any JSON reader.
func writeJSON(w io.Writer, v any, compact bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if !compact {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(escapeJSONRunes(buf.Bytes()))
	return err
}

// escapeJSONRunes escapes, in encoded JSON b, the runes of needsEscape that
// encoding/json leaves raw, as \uXXXX. They can only be inside strings,
// where the escape reads back as the same string.
func escapeJSONRunes(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return r >= 0x7f && needsEscape(r) }) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r >= 0x7f && needsEscape(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// jsonEscaper passes each record of a JSON log handler on with
// escapeJSONRunes applied: the handler writes a whole record per Write.
type jsonEscaper struct{ w io.Writer }

func (e jsonEscaper) Write(p []byte) (int, error) {
	if _, err := e.w.Write(escapeJSONRunes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
