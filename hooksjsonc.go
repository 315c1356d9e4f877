package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tailscale/hujson"
)

// Settings files may hold comments (JSONC): Gemini CLI reads its
// settings.json so, as VS Code does its own, and Cursor and Claude Code
// files are edited by hand in such editors. hujson reads them into a tree
// that keeps every comment and every byte of layout; a change is made to
// that tree only where the value changed (patchJSONC), so that what the
// user wrote elsewhere, comments included, stays as it was.

// parseJSONC reads a JSON or JSONC text: its tree as written, and its value
// as jsonValue, read from the same text with comments blanked out (so that
// offsets, and the lines an error names, stay those of the file).
func parseJSONC(data []byte) (hujson.Value, *jsonValue, error) {
	tree, err := hujson.Parse(data)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "hujson: ")
		if errors.Is(err, io.ErrUnexpectedEOF) {
			msg = "unexpected end of the file"
		}
		return hujson.Value{}, nil, errors.New(msg)
	}
	std := tree.Clone()
	std.Standardize()
	v, err := parseJSON(std.Pack())
	if err != nil {
		return hujson.Value{}, nil, err
	}
	return tree, v, nil
}

// patchJSONC changes tree, whose value is have, so that its value is want,
// and leaves every byte alone where the two agree: members of an object
// are matched by their name (the nth of a repeated name with the nth), an
// object that only gained or lost members keeps the others as written, and
// a value that changed otherwise is written anew, indented by indent per
// level from depth. A comment on the line of a member stays on the line of
// the member before it when one is added or removed after it, so that a
// member added and removed again gives back the same bytes.
func patchJSONC(tree *hujson.Value, have, want *jsonValue, indent string, depth int) {
	if have.equal(want) {
		return
	}
	// An object written on one line has no layout worth keeping, and a
	// member added on a line of its own would look out of place in it: it
	// is written anew, as a whole.
	obj, ok := tree.Value.(*hujson.Object)
	oneLine := ok && !bytes.Contains(hujson.Value{Value: obj}.Pack(), []byte("\n"))
	if !ok || oneLine || have.kind != '{' || want.kind != '{' || len(have.members) == 0 || len(want.members) == 0 || !patchMembers(obj, have, want, indent, depth) {
		tree.Value = encodeTrimmed(want, indent, depth)
	}
}

// patchMembers is patchJSONC for two objects with members. It reports
// false, having changed nothing, when want keeps members of have in another
// order, which no merge does.
func patchMembers(obj *hujson.Object, have, want *jsonValue, indent string, depth int) bool {
	haveIDs, wantIDs := memberIDs(have), memberIDs(want)
	wanted := map[string]bool{}
	for _, id := range wantIDs {
		wanted[id] = true
	}
	var kept []jsonMember
	var keptIDs []string
	for j, id := range haveIDs {
		if wanted[id] {
			kept, keptIDs = append(kept, have.members[j]), append(keptIDs, id)
		}
	}
	p := 0
	for _, id := range wantIDs {
		if p < len(keptIDs) && keptIDs[p] == id {
			p++
		} else if slices.Contains(keptIDs, id) {
			return false
		}
	}
	for j := len(haveIDs) - 1; j >= 0; j-- {
		if !wanted[haveIDs[j]] {
			removeMember(obj, j)
		}
	}
	p = 0
	for i, id := range wantIDs {
		if p < len(keptIDs) && keptIDs[p] == id {
			patchJSONC(&obj.Members[p].Value, kept[p].value, want.members[i].value, indent, depth+1)
		} else {
			insertMember(obj, p, want.members[i], indent, depth+1)
			kept = append(kept[:p], append([]jsonMember{want.members[i]}, kept[p:]...)...)
			keptIDs = append(keptIDs[:p], append([]string{id}, keptIDs[p:]...)...)
		}
		p++
	}
	return true
}

// memberIDs names each member of an object by its name and how many
// members before it share the name.
func memberIDs(v *jsonValue) []string {
	seen := map[string]int{}
	ids := make([]string, len(v.members))
	for i, m := range v.members {
		ids[i] = fmt.Sprintf("%d:%s", seen[m.key], m.key)
		seen[m.key]++
	}
	return ids
}

// insertMember adds m at index i of obj, on a line of its own indented for
// depth. The comment on the line of the member before it, which hujson
// keeps in front of what follows that member, stays on that line.
func insertMember(obj *hujson.Object, i int, m jsonMember, indent string, depth int) {
	next := extraAfter(obj, i)
	head, rest := splitLine(*next)
	*next = rest
	var name hujson.Value
	name.BeforeExtra = append(append(head, '\n'), strings.Repeat(indent, depth)...)
	name.Value = hujson.Literal(append([]byte(nil), m.rawKey...))
	val := hujson.Value{BeforeExtra: hujson.Extra(" "), Value: encodeTrimmed(m.value, indent, depth)}
	if i == len(obj.Members) && i > 0 && obj.Members[i-1].Value.AfterExtra != nil {
		val.AfterExtra = hujson.Extra{} // Keeps the trailing comma the object had.
	}
	obj.Members = append(obj.Members[:i], append([]hujson.ObjectMember{{Name: name, Value: val}}, obj.Members[i:]...)...)
}

// removeMember removes member i of obj, with the comments before it, and
// gives the line comment of the member before it back to that member.
func removeMember(obj *hujson.Object, i int) {
	head, _ := splitLine(obj.Members[i].Name.BeforeExtra)
	trailingComma := obj.Members[i].Value.AfterExtra != nil
	next := extraAfter(obj, i+1)
	_, rest := splitLine(*next)
	*next = append(head, rest...)
	obj.Members = append(obj.Members[:i], obj.Members[i+1:]...)
	if n := len(obj.Members); i == n && n > 0 && trailingComma && obj.Members[n-1].Value.AfterExtra == nil {
		obj.Members[n-1].Value.AfterExtra = hujson.Extra{}
	}
}

// extraAfter is the whitespace and comments in front of member i of obj:
// before its name, or before the closing brace when there is no member i.
func extraAfter(obj *hujson.Object, i int) *hujson.Extra {
	if i < len(obj.Members) {
		return &obj.Members[i].Name.BeforeExtra
	}
	return &obj.AfterExtra
}

// splitLine splits extra at its first newline: what comes before it is the
// end of the line of the value before (a comment on that line, say); rest
// starts at the newline. With no newline, or a newline inside a block
// comment, the whole is rest. Both are fresh copies: hujson's tree shares
// its bytes with the text it was parsed from.
func splitLine(extra hujson.Extra) (head, rest hujson.Extra) {
	i := bytes.IndexByte(extra, '\n')
	if i < 0 || !extra[:i+1].IsValid() { // a line comment is valid with its newline only
		return hujson.Extra{}, append(hujson.Extra{}, extra...)
	}
	return append(hujson.Extra{}, extra[:i]...), append(hujson.Extra{}, extra[i:]...)
}

// encodeTrimmed is v written as encodeJSON writes it, for a value at depth.
func encodeTrimmed(v *jsonValue, indent string, depth int) hujson.ValueTrimmed {
	t, err := hujson.Parse(appendJSON(nil, v, indent, depth))
	if err != nil {
		panic(fmt.Sprintf("encodeTrimmed wrote invalid JSON: %v", err)) // appendJSON writes only what parseJSON read
	}
	return t.Value
}
