package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// jsonValue is a JSON document that keeps what a user wrote: object keys in
// their order (and repeated, if they were), numbers and strings as their
// exact text. Merging hooks into an agent's settings through a map would
// reorder every key of the user's file.
type jsonValue struct {
	kind    byte   // '{', '[', or 0 for a scalar
	raw     []byte // a scalar's text as written
	members []jsonMember
	elems   []*jsonValue
}

type jsonMember struct {
	key    string
	rawKey []byte // the key's text as written, quotes included
	value  *jsonValue
}

func newObject() *jsonValue { return &jsonValue{kind: '{'} }

func newArray(elems ...*jsonValue) *jsonValue { return &jsonValue{kind: '[', elems: elems} }

// jsonScalar makes a string, number or boolean value.
func jsonScalar(v any) *jsonValue {
	b, _ := json.Marshal(v) // a string, int or bool always marshals
	return &jsonValue{raw: b}
}

// get returns the value of the last member named key, as JSON parsers do
// with a repeated key; nil when v is not an object or has no such member.
func (v *jsonValue) get(key string) *jsonValue {
	if v == nil || v.kind != '{' {
		return nil
	}
	for i := len(v.members) - 1; i >= 0; i-- {
		if v.members[i].key == key {
			return v.members[i].value
		}
	}
	return nil
}

// set replaces the value of key, or appends the member.
func (v *jsonValue) set(key string, val *jsonValue) {
	for i := len(v.members) - 1; i >= 0; i-- {
		if v.members[i].key == key {
			v.members[i].value = val
			return
		}
	}
	v.members = append(v.members, jsonMember{key: key, rawKey: jsonScalar(key).raw, value: val})
}

// remove deletes every member named key.
func (v *jsonValue) remove(key string) {
	v.members = slices.DeleteFunc(v.members, func(m jsonMember) bool { return m.key == key })
}

// str returns a string value.
func (v *jsonValue) str() (string, bool) {
	if v == nil || v.kind != 0 || len(v.raw) == 0 || v.raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(v.raw, &s) == nil
}

// isTrue reports whether v is the literal true.
func (v *jsonValue) isTrue() bool { return v != nil && v.kind == 0 && string(v.raw) == "true" }

// equal reports whether v and w are the same JSON value, key order
// included; scalars are compared by meaning, not by how they are written.
func (v *jsonValue) equal(w *jsonValue) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case '{':
		if len(v.members) != len(w.members) {
			return false
		}
		for i := range v.members {
			if v.members[i].key != w.members[i].key || !v.members[i].value.equal(w.members[i].value) {
				return false
			}
		}
		return true
	case '[':
		if len(v.elems) != len(w.elems) {
			return false
		}
		for i := range v.elems {
			if !v.elems[i].equal(w.elems[i]) {
				return false
			}
		}
		return true
	}
	if bytes.Equal(v.raw, w.raw) {
		return true
	}
	var a, b any
	return json.Unmarshal(v.raw, &a) == nil && json.Unmarshal(w.raw, &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
}

// parseJSON reads one JSON value, keeping its order and its scalars' text.
// The error names the line and column of a syntax error.
func parseJSON(data []byte) (*jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseJSONValue(dec, data)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			return v, nil
		} else if err == nil {
			err = errors.New("more than one value")
		}
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := lineColumn(data, syn.Offset)
		return nil, fmt.Errorf("line %d, column %d: %w", line, col, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, errors.New("unexpected end of the file")
	}
	return nil, err
}

// parseJSONValue reads one value from dec. A scalar's text is cut from data
// between the decoder's offsets, less the separators before it.
func parseJSONValue(dec *json.Decoder, data []byte) (*jsonValue, error) {
	start := dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return &jsonValue{raw: bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n,:")}, nil
	}
	v := &jsonValue{kind: byte(d)}
	for dec.More() {
		if v.kind == '[' {
			e, err := parseJSONValue(dec, data)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, e)
			continue
		}
		keyStart := dec.InputOffset()
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("object key %v is not a string", k)
		}
		rawKey := bytes.TrimLeft(data[keyStart:dec.InputOffset()], " \t\r\n,")
		val, err := parseJSONValue(dec, data)
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, jsonMember{key: key, rawKey: rawKey, value: val})
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return nil, err
	}
	return v, nil
}

func lineColumn(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

// encodeJSON writes v with one member or element per line, indented by
// indent per level, as JSON.stringify(v, null, 2) and json.MarshalIndent do,
// and a final newline.
func encodeJSON(v *jsonValue, indent string) []byte {
	return append(appendJSON(nil, v, indent, 0), '\n')
}

func appendJSON(b []byte, v *jsonValue, indent string, depth int) []byte {
	newline := func(b []byte, depth int) []byte {
		b = append(b, '\n')
		for range depth {
			b = append(b, indent...)
		}
		return b
	}
	switch v.kind {
	case '{':
		if len(v.members) == 0 {
			return append(b, "{}"...)
		}
		b = append(b, '{')
		for i, m := range v.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = newline(b, depth+1)
			b = append(b, m.rawKey...)
			b = append(b, ": "...)
			b = appendJSON(b, m.value, indent, depth+1)
		}
		return append(newline(b, depth), '}')
	case '[':
		if len(v.elems) == 0 {
			return append(b, "[]"...)
		}
		b = append(b, '[')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = newline(b, depth+1)
			b = appendJSON(b, e, indent, depth+1)
		}
		return append(newline(b, depth), ']')
	}
	return append(b, v.raw...)
}

// detectIndent returns the indentation of the first indented line of a
// JSON file, so that a rewritten file keeps its user's style; two spaces
// for a file with none.
func detectIndent(data []byte) string {
	for _, line := range bytes.Split(data, []byte("\n")) {
		trimmed := bytes.TrimLeft(line, " \t")
		if len(trimmed) > 0 && len(trimmed) < len(line) {
			return string(line[:len(line)-len(trimmed)])
		}
	}
	return "  "
}

// lineDiff is a unified-style diff of two texts, line by line, with three
// lines of context around each change, for --dry-run.
func lineDiff(oldName, newName string, a, b []byte) string {
	x, y := splitLines(a), splitLines(b)
	// Settings files are small; the quadratic table stays so for them, and
	// a huge file is shown whole instead.
	if len(x)*len(y) > 4<<20 {
		return "+++ " + newName + "\n" + string(b)
	}
	ops := diffLines(x, y)
	var out bytes.Buffer
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", oldName, newName)
	const context = 3
	for k := 0; k < len(ops); {
		if ops[k].op == ' ' {
			k++
			continue
		}
		// A hunk: from context lines before this change to context lines
		// after the last change that is close enough to join it.
		start := max(0, k-context)
		end := hunkEnd(ops, k, context)
		oldLine, newLine := lineCounts(ops[:start])
		oldN, newN := lineCounts(ops[start:end])
		out.WriteString("@@ -" + strconv.Itoa(oldLine+1) + "," + strconv.Itoa(oldN) + " +" + strconv.Itoa(newLine+1) + "," + strconv.Itoa(newN) + " @@\n")
		for _, o := range ops[start:end] {
			out.WriteByte(o.op)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		k = end
	}
	return out.String()
}

// diffLine is one line of a diff: kept (' '), removed ('-') or added ('+').
type diffLine struct {
	op   byte
	text string
}

// diffLines turns x into y with the fewest removed and added lines, by way
// of their longest common subsequence.
func diffLines(x, y []string) []diffLine {
	lcs := make([][]int32, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffLine
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, diffLine{' ', x[i]})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffLine{'-', x[i]})
			i++
		default:
			ops = append(ops, diffLine{'+', y[j]})
			j++
		}
	}
	return ops
}

// hunkEnd is where the hunk that starts with the change at k ends: context
// lines after the last change that is close enough to join it.
func hunkEnd(ops []diffLine, k, context int) int {
	end := k
	for end < len(ops) {
		if ops[end].op != ' ' {
			end++
			continue
		}
		next := end
		for next < len(ops) && ops[next].op == ' ' {
			next++
		}
		if next == len(ops) || next-end > 2*context {
			return min(len(ops), end+context)
		}
		end = next
	}
	return end
}

// lineCounts is how many lines of the old and of the new text ops span.
func lineCounts(ops []diffLine) (oldN, newN int) {
	for _, o := range ops {
		if o.op != '+' {
			oldN++
		}
		if o.op != '-' {
			newN++
		}
	}
	return oldN, newN
}

func splitLines(b []byte) []string {
	s := string(bytes.TrimSuffix(b, []byte("\n")))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
