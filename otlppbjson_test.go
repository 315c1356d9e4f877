package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// slowPayloadPB is appendPayloadPB without the scanner: the decoder's way.
func slowPayloadPB(payload []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if out, err := appendAnyValuePB(nil, dec); err == nil {
		if _, err := dec.Token(); err == io.EOF {
			return out
		}
	}
	return appendPBString(nil, 1, string(payload))
}

var pbPayloadSeeds = []string{
	`{"session":{"id":"s-1","turns":[{"role":"user","n":1},{"role":"tool","ok":true,"args":["ls","-l"]}]}}`,
	`{"max":9223372036854775807,"min":-9223372036854775808,"precise":9007199254740993,"huge":123456789012345678901234567890,"neg":-42}`,
	`[0.1,-2.5e-8,1e300,3.141592653589793,1.0,-0.5,1e400,-0]`,
	`{"t":true,"f":false,"n":null}`, `{"o":{},"a":[]}`, ` { "sp" : [ 1 , 2 ] } `,
	`{"ключ":"значение","emoji😀":"héllo ☃ 中文","esc":"tab\tnl\nquote\"nul\u0000 \ud83d\ude00 \/"}`,
	`"just a string"`, `42`, `null`, `false`, "\"bad \xff utf8\"", `{"a":1,}`, `[1 2]`, `{"a"}`, `01`, `{"a":tru}`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
}

// TestPayloadPBFastMatchesDecoder: the scanner writes, byte for byte, what
// the decoder's way writes, for every hook fixture and the awkward cases.
func TestPayloadPBFastMatchesDecoder(t *testing.T) {
	seeds := append([]string(nil), pbPayloadSeeds...)
	files, _ := filepath.Glob(filepath.Join("testdata", "hooks", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	if len(files) < 10 {
		t.Fatalf("only %d hook fixtures", len(files))
	}
	seeds = append(seeds, `{"session_id":"a","conversation_id":"b"}`, `{"thread-id":"t","session_id":""}`, `{"session_id":1,"session_id":"late"}`,
		`{"session_id":"x","session_id":2}`, `{"x":{"session_id":"nested"}}`, `{"session_id":"esc\u00e9"}`)
	for _, s := range seeds {
		if got, want := appendPayloadPB(nil, []byte(s)), slowPayloadPB([]byte(s)); !bytes.Equal(got, want) {
			t.Errorf("payload %.60q: scanner wrote %x, decoder %x", s, got, want)
		}
		if _, id, ok := appendPayloadPBFast(nil, []byte(s)); ok && id != sessionID([]byte(s)) {
			t.Errorf("payload %.60q: scanner read session %q, sessionID %q", s, id, sessionID([]byte(s)))
		}
	}
	if _, _, ok := appendPayloadPBFast(nil, []byte(strings.Repeat("[", 100)+strings.Repeat("]", 100))); ok {
		t.Error("the scanner followed nesting past maxScanDepth")
	}
}

func FuzzPayloadPB(f *testing.F) {
	for _, s := range pbPayloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if got, want := appendPayloadPB(nil, payload), slowPayloadPB(payload); !bytes.Equal(got, want) {
			t.Errorf("payload %q: scanner wrote %x, decoder %x", payload, got, want)
		}
		if _, id, ok := appendPayloadPBFast(nil, payload); ok && id != sessionID(payload) {
			t.Errorf("payload %q: scanner read session %q, sessionID %q", payload, id, sessionID(payload))
		}
	})
}

// TestScanHookFieldsMatchesUnmarshal: the scanner reads every hook fixture
// as encoding/json reads it into hookFields.
func TestScanHookFieldsMatchesUnmarshal(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "hooks", "*.json"))
	extra := []string{`{"session_id":"a","session_id":"b","is_interrupt":true,"duration":12.5,"error":{"x":[1,{"y":null}]}}`, `{}`, ` { "tool_use_id" : "t" } `}
	seeds := extra
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		got, ok := scanHookFields([]byte(s))
		var want hookFields
		if err := json.Unmarshal([]byte(s), &want); err != nil || !ok {
			t.Errorf("%.60q: scanner ok %v, unmarshal %v", s, ok, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%.60q: scanner read %+v, encoding/json %+v", s, got, want)
		}
	}
	for _, bad := range []string{`[]`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`, `"s"`} {
		if _, ok := scanHookFields([]byte(bad)); ok {
			t.Errorf("scanner took %q", bad)
		}
	}
}
