package main

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRedact checks that redaction keeps any JSON payload valid JSON, and
// changes nothing outside the strings it replaced secrets in: the bytes
// between strings stay, and every string either stays byte for byte or
// holds a [REDACTED:…] marker. It also checks the redactor's string decoder
// against encoding/json's. Its seed corpus is in testdata/fuzz/FuzzRedact.
func FuzzRedact(f *testing.F) {
	f.Add([]byte(`{"prompt":"AKIAABCDEFGHIJKLMNOP"}`))
	f.Add([]byte(`{"password":"hunter22","n":[1,2.50,-0e3],"k\"ey":"\\\"","u":"\u00e9\ud83d\ude00"}`))
	f.Add([]byte(`["Authorization: Bearer abcdefgh12345678", "token=x\ny", {"api_key": {"password": "a"}}]`))
	r, err := newRedactor(redactOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if !json.Valid(p) {
			return
		}
		out := r.payload(p, func(string) {})
		if !json.Valid(out) {
			t.Fatalf("redaction made invalid JSON:\n in %q\nout %q", p, out)
		}
		inFrame, inStrings := splitStrings(p)
		outFrame, outStrings := splitStrings(out)
		if inFrame != outFrame || len(inStrings) != len(outStrings) {
			t.Fatalf("redaction changed bytes outside strings:\n in %q\nout %q", p, out)
		}
		for _, s := range inStrings {
			var want string
			if err := json.Unmarshal([]byte(s), &want); err != nil {
				t.Fatalf("string %q of valid JSON does not decode: %v", s, err)
			}
			got, ok := decodeString(nil, []byte(s))
			if !ok || string(got) != want && utf8.ValidString(s) {
				t.Fatalf("decodeString(%q) = %q, %v; encoding/json decodes %q", s, got, ok, want)
			}
		}
		for i, s := range inStrings {
			if s != outStrings[i] && !strings.Contains(outStrings[i], "[REDACTED:") {
				t.Fatalf("string %d changed without a marker: %q became %q", i, s, outStrings[i])
			}
		}
	})
}

// splitStrings cuts JSON text into its frame (everything outside strings,
// each string left as "") and its string tokens as written. It is a
// character-by-character scan, independent of the redactor's own.
func splitStrings(p []byte) (frame string, strs []string) {
	var fb, sb strings.Builder
	in, esc := false, false
	for _, c := range p {
		switch {
		case !in:
			fb.WriteByte(c)
			if c == '"' {
				in = true
				sb.Reset()
				sb.WriteByte(c)
			}
		case esc:
			esc = false
			sb.WriteByte(c)
		case c == '\\':
			esc = true
			sb.WriteByte(c)
		default:
			sb.WriteByte(c)
			if c == '"' {
				in = false
				fb.WriteByte(c)
				strs = append(strs, sb.String())
			}
		}
	}
	return fb.String(), strs
}
