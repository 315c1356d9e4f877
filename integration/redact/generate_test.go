package redact

import (
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// A rule's secrets are made from the rule's own regular expression: the
// generator walks its parse tree and picks, at every choice, a random way
// through it. Nothing here knows what a provider's token looks like, so
// the secrets are gitleaks' idea of them, not difflore's.

// maxPrefixes bounds the set of literal prefixes literalPrefixes builds;
// past it a rule's start is too varied to call fixed.
const maxPrefixes = 64

// literalPrefixes returns the strings every match of re starts with one of,
// as far as they are fixed: a literal, a small class ([MC], ["']) and an
// alternation of such are followed; a repetition or a wide class ends the
// prefix. complete is true when re matches exactly the strings returned.
// A literal matched in any case ((?i)) counts as fixed: its letters are
// the same letters whatever their case.
func literalPrefixes(re *syntax.Regexp) (set []string, complete bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{string(re.Rune)}, true
	case syntax.OpCharClass:
		var runes []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(runes) == 4 {
					return []string{""}, false
				}
				runes = append(runes, string(r))
			}
		}
		return runes, true
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpCapture:
		return literalPrefixes(re.Sub[0])
	case syntax.OpConcat:
		acc := []string{""}
		for _, sub := range re.Sub {
			s, c := literalPrefixes(sub)
			var next []string
			for _, a := range acc {
				for _, b := range s {
					next = append(next, a+b)
				}
			}
			if len(next) > maxPrefixes {
				return acc, false
			}
			acc = next
			if !c {
				return acc, false
			}
		}
		return acc, true
	case syntax.OpAlternate:
		var all []string
		complete := true
		for _, sub := range re.Sub {
			s, c := literalPrefixes(sub)
			all = append(all, s...)
			complete = complete && c
		}
		return all, complete
	case syntax.OpQuest:
		s, c := literalPrefixes(re.Sub[0])
		return append([]string{""}, s...), c
	case syntax.OpPlus:
		s, _ := literalPrefixes(re.Sub[0])
		return s, false
	case syntax.OpRepeat:
		if re.Min >= 1 {
			s, _ := literalPrefixes(re.Sub[0])
			return s, false
		}
	}
	return []string{""}, false
}

// fixedPrefix returns the shortest of the literal prefixes of pattern, and
// whether the rule has one of three characters or more: those are the
// rules whose secrets name themselves (ghp_, AKIA, xoxb-) and that the
// recall test counts.
func fixedPrefix(pattern string) (shortest string, ok bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	set, _ := literalPrefixes(re)
	if len(set) == 0 {
		return "", false
	}
	shortest = set[0]
	for _, s := range set {
		if utf8.RuneCountInString(s) < utf8.RuneCountInString(shortest) {
			shortest = s
		}
	}
	return shortest, utf8.RuneCountInString(shortest) >= 3
}

// generator makes random strings that a regular expression matches.
type generator struct {
	rnd *rand.Rand
	// source is the pattern being generated from, lower case and without
	// backslashes: a literal matched in any case is written as the rule
	// writes it (npm_, not NPM_), which the parser does not keep.
	source string
	raw    string
}

// wideAlphabet is what a class that takes nearly anything (., [\s\S],
// [^"]) is given from: the characters of encoded key material, and now
// and then a line break, so that a key body can span lines as PEM does.
const wideAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// maxExtra bounds how far past its minimum an open repetition ({n,}, *, +)
// or a very wide one ({32,400}) goes: secrets of a realistic length.
const maxExtra = 48

// generate returns a random string that pattern matches.
func (g *generator) generate(pattern string) (string, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", err
	}
	g.raw = strings.ReplaceAll(pattern, `\`, "")
	g.source = strings.ToLower(g.raw)
	var b strings.Builder
	g.walk(&b, re)
	return b.String(), nil
}

func (g *generator) walk(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(g.literal(re))
	case syntax.OpCharClass:
		b.WriteRune(g.classRune(re.Rune))
	case syntax.OpAnyChar:
		g.any(b, true)
	case syntax.OpAnyCharNotNL:
		g.any(b, false)
	case syntax.OpCapture:
		g.walk(b, re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			g.walk(b, sub)
		}
	case syntax.OpAlternate:
		g.walk(b, g.branch(re.Sub))
	case syntax.OpQuest:
		if g.rnd.IntN(2) == 0 {
			g.walk(b, re.Sub[0])
		}
	case syntax.OpStar:
		g.repeat(b, re.Sub[0], 0, 2)
	case syntax.OpPlus:
		g.repeat(b, re.Sub[0], 1, 3)
	case syntax.OpRepeat:
		hi := re.Max
		if hi < 0 || hi-re.Min > maxExtra {
			hi = re.Min + maxExtra
		}
		g.repeat(b, re.Sub[0], re.Min, hi)
	}
	// Empty-width operators (^, $, \b, \z) and the empty match add nothing:
	// the payload around the secret gives the boundary, and gitleaks'
	// detector, run on the payload, says whether it holds.
}

// branch picks an alternative. One that matches only the empty string (the
// $ of a rule's closing (?:[\x60'"\s;]|\\[nr]|$)) is taken whenever there
// is one: the character it would otherwise add belongs to the payload
// around the secret, not to the secret.
func (g *generator) branch(subs []*syntax.Regexp) *syntax.Regexp {
	for _, s := range subs {
		if emptyOnly(s) {
			return s
		}
	}
	return subs[g.rnd.IntN(len(subs))]
}

func emptyOnly(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpCapture:
		return emptyOnly(re.Sub[0])
	}
	return false
}

func (g *generator) repeat(b *strings.Builder, sub *syntax.Regexp, lo, hi int) {
	n := lo
	if hi > lo {
		n += g.rnd.IntN(hi - lo + 1)
	}
	for range n {
		g.walk(b, sub)
	}
}

// literal returns a literal's text. One matched in any case is written
// as the pattern has it, when the pattern has it in one piece.
func (g *generator) literal(re *syntax.Regexp) string {
	lit := string(re.Rune)
	if re.Flags&syntax.FoldCase == 0 {
		return lit
	}
	if i := strings.Index(g.source, strings.ToLower(lit)); i >= 0 && len(g.source) == len(g.raw) {
		return g.raw[i : i+len(lit)]
	}
	return strings.ToLower(lit)
}

// any writes what a dot matches. Half the time that is a dot: a dot left
// unescaped in a rule (hooks.slack.com, xoxe.xoxb-) stands for one in
// every real secret, and the rule's keywords often say so.
func (g *generator) any(b *strings.Builder, newline bool) {
	if g.rnd.IntN(2) == 0 {
		b.WriteByte('.')
		return
	}
	if newline && g.rnd.IntN(40) == 0 {
		b.WriteByte('\n')
		return
	}
	b.WriteByte(wideAlphabet[g.rnd.IntN(len(wideAlphabet))])
}

// classRune picks a rune of a class, given as syntax gives it: pairs of
// the low and high end of each range. A class of printable ASCII is drawn
// from evenly; a wide one (a negated class, [\s\S]) from wideAlphabet as
// far as it allows, so that a secret stays printable text.
func (g *generator) classRune(ranges []rune) rune {
	in := func(r rune) bool {
		for i := 0; i+1 < len(ranges); i += 2 {
			if ranges[i] <= r && r <= ranges[i+1] {
				return true
			}
		}
		return false
	}
	var printable []rune
	for r := rune(' '); r <= '~'; r++ {
		if in(r) {
			printable = append(printable, r)
		}
	}
	if len(printable) > 80 || (in('\n') && len(printable) > 60) {
		if in('\n') && g.rnd.IntN(40) == 0 {
			return '\n'
		}
		allowed := slices.DeleteFunc([]rune(wideAlphabet), func(r rune) bool { return !in(r) })
		if len(allowed) > 0 {
			return allowed[g.rnd.IntN(len(allowed))]
		}
	}
	if in('\t') || in('\n') {
		// \s: mostly a space, as text has.
		if len(printable) > 0 && printable[0] == ' ' && g.rnd.IntN(4) != 0 {
			return ' '
		}
	}
	if len(printable) > 0 {
		return printable[g.rnd.IntN(len(printable))]
	}
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] <= '\n' && '\n' <= ranges[i+1] {
			return '\n'
		}
	}
	if len(ranges) == 0 {
		return 'x'
	}
	return ranges[0]
}
