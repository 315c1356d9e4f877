package main

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Redaction replaces secrets in payloads as the daemon sends them: every
// JSON string of a payload (object keys too, see redactor.payload) is
// scanned, and each secret found is replaced with [REDACTED:<rule>]. The
// outbox keeps what the hook gave; only what leaves the machine changes.

// redactOptions is how redaction is set up. Its zero value is the default:
// on, with the built-in rules. config.toml's redact, redact_rules and
// redact_allow fill it, and the environment, when it sets DIFFLORE_REDACT,
// decides whether it is on (redactOptionsFromEnv).
type redactOptions struct {
	off   bool         // send payloads as the hook gave them
	rules []customRule // more rules, run after the built-in ones
	allow []string     // values that are never replaced, whatever matched them
}

// customRule is a rule a user adds: a name for [REDACTED:<name>] and a
// regular expression whose first group, when it has one, is what is
// replaced (else the whole match).
type customRule struct {
	name, pattern string
}

// redactEnv turns redaction off when set to 0, false, off or no.
const redactEnv = "DIFFLORE_REDACT"

// redactOptionsFromEnv reads the one redaction setting the environment
// holds. Any value but 0, false or off leaves redaction on: a typo must not
// send secrets.
func redactOptionsFromEnv(getenv func(string) string) redactOptions {
	switch strings.ToLower(strings.TrimSpace(getenv(redactEnv))) {
	case "0", "false", "off", "no":
		return redactOptions{off: true}
	}
	return redactOptions{}
}

// redactRule finds one kind of secret in a decoded JSON string.
type redactRule struct {
	name string
	// keywords are lower-case strings one of which any match holds: the
	// rule runs only on text that holds one (see ruleSet). A rule without
	// keywords always runs.
	keywords []string
	mask     uint64         // bits of the keywords in the ruleSet
	re       *regexp.Regexp // group 1, when there is one, is what is replaced
	// lower runs re on the lower-cased text, for a rule whose names are
	// matched in any case: (?i) would cost the regexp its literal prefix,
	// and so its fast scan.
	lower bool
	// word requires the match to start a word; a leading \b would also
	// cost the literal prefix.
	word bool
	// valid, when set, checks a match further; RE2 has no look-around.
	valid func(secret []byte) bool
}

// ruleSet is the rules and an index of their keywords, which tells in one
// pass over a string which rules can match in it: most strings hold no
// keyword at all, and a rule whose keywords are absent is not run.
type ruleSet struct {
	rules    []redactRule
	keywords []string     // lower case, two bytes or more
	byFirst  [256][]uint8 // indexes into keywords, by first byte
	// pairs has bit c0<<8|c1 set when a keyword starts with the bytes c0
	// c1: one look-up rules out nearly every position of a text.
	pairs  [1 << 10]uint64
	fold   [256]byte // ASCII lower case
	assign uint64    // the bits of secretAnchors' anchors
	anchor []uint64  // the bit of each of secretAnchors
	keys   uint64    // the bits of what a key that says secret holds
	always bool      // some rule has no keywords
}

// seen returns the bits of the keywords text holds, in any case.
func (rs *ruleSet) seen(text []byte) uint64 {
	var m uint64
	for i := 0; i+1 < len(text); i++ {
		c := rs.fold[text[i]]
		p := uint(c)<<8 | uint(rs.fold[text[i+1]])
		if rs.pairs[p>>6]&(1<<(p&63)) == 0 {
			continue
		}
		for _, k := range rs.byFirst[c] {
			kw := rs.keywords[k]
			if m&(1<<k) != 0 || i+len(kw) > len(text) {
				continue
			}
			j := 2
			for j < len(kw) && rs.fold[text[i+j]] == kw[j] {
				j++
			}
			if j == len(kw) && rs.fold[text[i+1]] == kw[1] {
				m |= 1 << k
			}
		}
	}
	return m
}

// newRuleSet indexes the keywords of rules and of secretAnchors.
func newRuleSet(rules []redactRule) *ruleSet {
	rs := &ruleSet{rules: rules}
	for c := range rs.fold {
		rs.fold[c] = byte(c)
		if 'A' <= c && c <= 'Z' {
			rs.fold[c] += 'a' - 'A'
		}
	}
	bit := func(k string) uint64 {
		i := slices.Index(rs.keywords, k)
		if i < 0 {
			if len(k) < 2 || strings.ToLower(k) != k {
				panic(fmt.Sprintf("redact: keyword %q is not lower case or shorter than two bytes", k))
			}
			i = len(rs.keywords)
			rs.keywords = append(rs.keywords, k)
			rs.byFirst[k[0]] = append(rs.byFirst[k[0]], uint8(i))
			p := uint(k[0])<<8 | uint(k[1])
			rs.pairs[p>>6] |= 1 << (p & 63)
		}
		return 1 << i
	}
	for i := range rs.rules {
		for _, k := range rs.rules[i].keywords {
			rs.rules[i].mask |= bit(k)
		}
		rs.always = rs.always || rs.rules[i].mask == 0
	}
	for _, a := range secretAnchors {
		rs.anchor = append(rs.anchor, bit(a.anchor))
		rs.assign |= rs.anchor[len(rs.anchor)-1]
	}
	rs.keys = rs.assign | bit("authorization") | bit("cookie")
	if len(rs.keywords) > 64 {
		panic("redact: more than 64 keywords")
	}
	return rs
}

// secretAssignment is the rule name of a value given to a name that says
// secret: password=…, token: …, "api_key": "…", and a JSON member whose key
// says secret.
const secretAssignment = "secret-assignment"

// builtinRules are compiled the first time a redactor is made, never at
// package init: enqueue, the hook's fast path, is the same program and
// must not pay for regular expressions it never runs.
var builtinRules = sync.OnceValue(compileBuiltinRules)

// compileBuiltinRules compiles the rules every redactor starts with.
func compileBuiltinRules() *ruleSet {
	type opt func(*redactRule)
	word := func(r *redactRule) { r.word = true }
	lower := func(r *redactRule) { r.lower = true }
	valid := func(f func([]byte) bool) opt { return func(r *redactRule) { r.valid = f } }
	mk := func(name, pattern string, keywords []string, opts ...opt) redactRule {
		r := redactRule{name: name, keywords: keywords, re: regexp.MustCompile(pattern)}
		for _, o := range opts {
			o(&r)
		}
		return r
	}
	kw := func(k ...string) []string { return k }
	return newRuleSet([]redactRule{
		// A key block is replaced whole, armour lines included; one cut
		// short (a head of the file) to the end of the text.
		mk("private-key", `-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)`, kw("-----begin")),
		// One expression per prefix: each keeps a literal prefix to scan for.
		mk("aws-access-key-id", `AKIA[A-Z0-9]{16}\b`, kw("akia"), word),
		mk("aws-access-key-id", `ASIA[A-Z0-9]{16}\b`, kw("asia"), word),
		mk("aws-access-key-id", `ABIA[A-Z0-9]{16}\b`, kw("abia"), word),
		mk("aws-access-key-id", `ACCA[A-Z0-9]{16}\b`, kw("acca"), word),
		mk("aws-secret-access-key", `secret_?access_?key["']?\s*[:=]\s*["']?([a-z0-9/+]{40})(?:[^a-z0-9/+=]|$)`, kw("secret"), lower),
		mk("github-token", `gh[pousr]_[A-Za-z0-9]{36,255}\b`, kw("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), word),
		mk("github-pat", `github_pat_[A-Za-z0-9_]{22,255}\b`, kw("github_pat_"), word),
		mk("gitlab-token", `glpat-[A-Za-z0-9_-]{20,}`, kw("glpat-"), word),
		mk("slack-token", `xox[abposr]-[A-Za-z0-9-]{10,}`, kw("xox"), word),
		mk("stripe-key", `sk_(?:live|test|prod)_[A-Za-z0-9]{20,}\b`, kw("sk_"), word),
		mk("stripe-key", `rk_(?:live|test|prod)_[A-Za-z0-9]{20,}\b`, kw("rk_"), word),
		mk("anthropic-key", `sk-ant-[A-Za-z0-9_-]{32,}`, kw("sk-"), word),
		mk("openai-key", `sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}`, kw("sk-"), word, valid(mixedCase)),
		mk("google-api-key", `AIza[0-9A-Za-z_-]{35}`, kw("aiza"), word),
		mk("npm-token", `npm_[A-Za-z0-9]{36}\b`, kw("npm_"), word),
		mk("huggingface-token", `hf_[A-Za-z0-9]{34,}\b`, kw("hf_"), word, valid(mixedCase)),
		mk("sendgrid-key", `SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`, kw("sg."), word),
		mk("jwt", `eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`, kw("eyj"), word),
		// After Authorization: the scheme says what follows is a
		// credential. Standing alone, "bearer" is often prose ("a bearer
		// token"), so the credential must look like one.
		mk("authorization", `authorization["']?\s*[:=]\s*["']?(?:bearer|basic|token)\s+([a-z0-9._~+/-]+=*)`, kw("authorization"), lower),
		mk("authorization", `bearer\s+([a-z0-9._~+/-]{16,}=*)`, kw("bearer"), lower, word, valid(hasDigit)),
		// scheme://user:password@host; the scheme is checked in find.
		mk("url-credentials", `://[^\s:/?#@"'<>]+:([^\s/?#@"'<>]+)@`, kw("://"), valid(notReference)),
	})
}

// mixedCase is true of a key's random part: upper and lower case letters
// and a digit, which a slug or an identifier of the same shape
// ("sk-learn-…", "hf_hub_…") lacks.
func mixedCase(b []byte) bool {
	var upper, lower, digit bool
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z':
			lower = true
		case '0' <= c && c <= '9':
			digit = true
		}
	}
	return upper && lower && digit
}

func hasDigit(b []byte) bool { return bytes.ContainsAny(b, "0123456789") }

// notReference is false for a value that names a secret kept elsewhere
// (${DB_PASSWORD}, $TOKEN, {{ .Token }}, %(password)s) rather than holding it.
func notReference(b []byte) bool {
	return len(b) > 0 && b[0] != '$' && b[0] != '%' && !bytes.HasPrefix(b, []byte("{{"))
}

// redactor replaces secrets in payloads. A nil *redactor replaces nothing:
// that is redaction turned off.
type redactor struct {
	*ruleSet
	allow   map[string]bool
	scratch sync.Pool // of *scratch
}

// newRedactor compiles the rules opts asks for; nil when redaction is off.
func newRedactor(opts redactOptions) (*redactor, error) {
	if opts.off {
		return nil, nil
	}
	r := &redactor{ruleSet: builtinRules()}
	if len(opts.rules) > 0 {
		rules := slices.Clone(r.rules)
		for _, c := range opts.rules {
			re, err := regexp.Compile(c.pattern)
			if err != nil {
				return nil, fmt.Errorf("redaction rule %q: %w", c.name, err)
			}
			rules = append(rules, redactRule{name: c.name, re: re})
		}
		r.ruleSet = newRuleSet(rules)
	}
	if len(opts.allow) > 0 {
		r.allow = make(map[string]bool, len(opts.allow))
		for _, v := range opts.allow {
			r.allow[v] = true
		}
	}
	return r, nil
}

// span is a part of a decoded string that a rule found to be a secret.
type span struct {
	start, end int
	rule       string
	prio       int // the rule's place in the list
}

// minSecret is the shortest text the rules scan: nothing shorter holds a
// name=value pair or a key of any provider.
const minSecret = 8

// scratch is a redactor's working memory for one payload, kept for the
// next one (redactor.scratch): a batch of a hundred events would otherwise
// allocate it a hundred times.
type scratch struct {
	lower []byte // the string being scanned, lower case
	text  []byte // the string being scanned, decoded, when it has escapes
	repl  []byte // the string with its secrets replaced
	spans []span
}

// payload returns p with its secrets replaced, and calls found once for
// each secret, with its rule. When nothing is found, it returns p itself.
//
// It walks the raw bytes and touches only JSON strings: key order, numbers
// and white space stay byte for byte, and a string is encoded again only
// when something in it was replaced. p must be valid JSON (enqueue made
// sure of it); should it not be, the part that cannot be read is sent as
// it is.
//
// Object keys are scanned too, with every rule but secret-assignment (a key
// is a name, not a value given to one): a map keyed by tokens leaks them as
// surely as values do. The value of a member whose key says secret
// ("password", "apiKey", "client_secret", "Authorization") is replaced
// whole when no other rule found something in it.
func (r *redactor) payload(p []byte, found func(rule string)) []byte {
	if r == nil {
		return p
	}
	sc, _ := r.scratch.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	defer r.scratch.Put(sc)
	var out []byte // nil until the first replacement
	copied := 0    // p[:copied] is in out already
	secretValueAt := -1
	for i := 0; i < len(p); {
		q := bytes.IndexByte(p[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		end := stringEnd(p, start)
		if end < 0 {
			break
		}
		i = end
		after := skipSpace(p, end)
		isKey := after < len(p) && p[after] == ':'
		raw := p[start:end]
		text, ok := decodeString(sc.text[:0], raw)
		if !ok {
			continue
		}
		if len(text) > 0 && len(raw) > 2 && &text[0] != &raw[1] {
			sc.text = text[:0] // the decoded copy: keep its memory
		}
		spans := r.find(sc, text, isKey)
		if len(spans) == 0 && start == secretValueAt && secretValue(text, true, false) && !r.allow[string(text)] {
			spans = append(spans, span{0, len(text), secretAssignment, 0})
		}
		secretValueAt = -1
		if isKey && r.keySaysSecret(text) {
			secretValueAt = skipSpace(p, after+1)
		}
		if len(spans) == 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(p)+64)
		}
		out = append(out, p[copied:start]...)
		sc.repl = replaceSpans(sc.repl[:0], text, spans)
		out = quoteJSON(out, sc.repl)
		copied = end
		for _, s := range spans {
			found(s.rule)
		}
	}
	if out == nil {
		return p
	}
	return append(out, p[copied:]...)
}

// stringEnd returns the index just past the JSON string that starts at the
// quote p[start], or -1 when it has no end.
func stringEnd(p []byte, start int) int {
	for k := start + 1; ; {
		q := bytes.IndexByte(p[k:], '"')
		if q < 0 {
			return -1
		}
		q += k
		n := 0 // backslashes before the quote: an odd number escapes it
		for j := q - 1; j > start && p[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		k = q + 1
	}
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// decodeString decodes a JSON string token, quotes included, appending to
// dst. One without escapes is its own text, shared rather than copied. Invalid UTF-8 and
// lone surrogates become U+FFFD, as encoding/json decodes them.
func decodeString(dst, raw []byte) ([]byte, bool) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	out := slices.Grow(dst, len(inner))
	for i := 0; i < len(inner); {
		c := inner[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				out = append(out, c)
				i++
				continue
			}
			r, n := utf8.DecodeRune(inner[i:])
			out = utf8.AppendRune(out, r)
			i += n
			continue
		}
		if i+1 >= len(inner) {
			return nil, false
		}
		switch e := inner[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(inner[i+2:])
			if !ok {
				return nil, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(inner[min(i+2, len(inner)):]); ok && i+1 < len(inner) && inner[i] == '\\' && inner[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, false
		}
		i += 2
	}
	return out, true
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// find returns the secrets in text, in order and without overlap: where two
// rules find overlapping text, the earlier rule in the list wins.
func (r *redactor) find(sc *scratch, text []byte, isKey bool) []span {
	if len(text) < minSecret {
		return nil
	}
	sc.spans = sc.spans[:0]
	seen := r.seen(text)
	if seen == 0 && !r.always {
		return nil // no keyword: no rule can match
	}
	sc.lower = asciiLower(sc.lower[:0], text)
	prio := 0 // the rule's place in the list: where spans overlap, the lower wins
	add := func(s, e int, rule string) {
		if s < e && !r.allow[string(text[s:e])] {
			sc.spans = append(sc.spans, span{s, e, rule, prio})
		}
	}
	for i, rule := range r.rules {
		if rule.mask != 0 && rule.mask&seen == 0 {
			continue
		}
		prio = i
		in := text
		if rule.lower {
			in = sc.lower
		}
		for _, m := range rule.re.FindAllSubmatchIndex(in, -1) {
			if rule.word && m[0] > 0 && isWordByte(text[m[0]-1]) {
				continue
			}
			if rule.name == "url-credentials" && (m[0] == 0 || !isLetter(text[m[0]-1])) {
				continue // no scheme before ://
			}
			s, e := m[0], m[1]
			if len(m) >= 4 && m[2] >= 0 {
				s, e = m[2], m[3]
			}
			if rule.valid != nil && !rule.valid(text[s:e]) {
				continue
			}
			add(s, e, rule.name)
		}
	}
	prio = len(r.rules)
	if !isKey && seen&r.assign != 0 {
		for i, a := range secretAnchors {
			if seen&r.anchor[i] != 0 {
				findAssignments(text, sc.lower, a.anchor, a.names, func(s, e int) { add(s, e, secretAssignment) })
			}
		}
	}
	return dropOverlaps(sc.spans)
}

// dropOverlaps sorts spans by where they start and keeps, of spans that
// overlap, the one whose rule comes first. Sorting first keeps this linear
// in the spans after the sort: a .env of thousands of lines holds
// thousands of secrets.
func dropOverlaps(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return a.prio - b.prio
	})
	kept := spans[:0]
	for _, s := range spans {
		if n := len(kept); n > 0 && s.start < kept[n-1].end {
			// Every span kept before the last ends before the last
			// starts, so before s starts: only the last can overlap s.
			if s.prio < kept[n-1].prio {
				kept[n-1] = s
			}
			continue
		}
		kept = append(kept, s)
	}
	return kept
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isWordByte(c byte) bool { return isLetter(c) || '0' <= c && c <= '9' || c == '_' }

func asciiLower(dst, b []byte) []byte {
	dst = slices.Grow(dst, len(b))
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// keySaysSecret reports whether a JSON member's key names a secret: it ends
// in one of secretAnchors' names (a name that goes on past one, such as
// token_count, maxTokens or password_reset, names something else), or it is
// a header map's Authorization or Cookie.
func (rs *ruleSet) keySaysSecret(key []byte) bool {
	if len(key) > 64 || rs.seen(key)&rs.keys == 0 {
		return false
	}
	var buf [64]byte
	k := asciiLower(buf[:0], key)
	for _, a := range secretAnchors {
		for _, n := range a.names {
			if bytes.HasSuffix(k, []byte(n)) {
				return true
			}
		}
	}
	return bytes.Equal(k, []byte("authorization")) || bytes.Equal(k, []byte("cookie"))
}

// findAssignments finds values given to names, which all start or end with
// anchor, in text: name=value (.env, a shell, a query string), name: value (YAML, a header)
// and "name": "value" (JSON quoted inside a string). It calls add with the
// value's span; a quoted value's quotes stay.
func findAssignments(text, lower []byte, anchor string, names []string, add func(start, end int)) {
	for off := 0; ; {
		i := bytes.Index(lower[off:], []byte(anchor))
		if i < 0 {
			return
		}
		i += off
		off = i + 1
		for _, name := range names {
			start := i
			if len(name) > len(anchor) && name[len(name)-len(anchor):] == anchor {
				start = i + len(anchor) - len(name) // a name that ends in the anchor
			}
			if start < 0 || !bytes.HasPrefix(lower[start:], []byte(name)) {
				continue
			}
			if s, e, ok := assignedValue(text, start+len(name)); ok {
				add(s, e)
			}
		}
	}
}

// secretAnchors are the names that say secret, lower case, grouped by a
// part each holds at its start or at its end, so that findAssignments
// searches the text for five strings, not for every name.
var secretAnchors = []struct {
	anchor string
	names  []string
}{
	{"pass", []string{"password", "passwd", "passphrase"}},
	{"secret", []string{"secret"}},
	{"token", []string{"token"}},
	{"credential", []string{"credentials", "credential"}},
	{"key", []string{"apikey", "api_key", "api-key", "accesskey", "access_key", "access-key",
		"secretkey", "secret_key", "secret-key", "privatekey", "private_key", "private-key"}},
}

// assignedValue reads what follows a name that ends at j: an optional
// closing quote, '=' or ':' with optional blanks around it, and the value.
// It reports the value's span and whether it is a secret.
func assignedValue(text []byte, j int) (start, end int, ok bool) {
	n := len(text)
	blank := func(k int) int {
		for k < n && (text[k] == ' ' || text[k] == '\t') {
			k++
		}
		return k
	}
	if j < n && (text[j] == '"' || text[j] == '\'') {
		j++
	}
	k := blank(j)
	spaced := k > j
	if k >= n || (text[k] != '=' && text[k] != ':') {
		return 0, 0, false
	}
	sep := text[k]
	k++
	// ==, =>, := and :: are code: a comparison, an arrow, a declaration,
	// a path.
	if k < n && (text[k] == '=' || text[k] == '>' || text[k] == ':') {
		return 0, 0, false
	}
	v := blank(k)
	spaced = spaced && v > k
	if v >= n {
		return 0, 0, false
	}
	if q := text[v]; q == '"' || q == '\'' || q == '`' {
		e := bytes.IndexByte(text[v+1:], q)
		if e < 0 || bytes.IndexByte(text[v+1:v+1+e], '\n') >= 0 {
			return 0, 0, false
		}
		s, e := v+1, v+1+e
		return s, e, secretValue(text[s:e], true, false)
	}
	e := v
	for e < n && !endsValue(text[e]) {
		e++
	}
	return v, e, secretValue(text[v:e], false, sep == '=' && spaced)
}

// endsValue reports whether c ends an unquoted value: a blank, a quote, a
// separator of a list, a query or a command, a closing bracket.
func endsValue(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '"', '\'', '`', ',', ';', '&', '<', '>', ')', ']', '}', '|':
		return true
	}
	return false
}

// placeholders are values that stand for a secret rather than being one.
var placeholders = []string{
	"null", "nil", "none", "true", "false", "undefined", "required", "optional",
	"string", "str", "bool", "boolean", "int", "number", "object", "any",
	"secret", "password", "token", "redacted", "xxx", "xxxx", "...", "…",
}

// secretValue tells a secret from what stands in its place: an empty value,
// a reference to one kept elsewhere, a path (to a key file, a secrets
// mount), a placeholder, one already redacted. Unquoted, it also tells
// values from code and counts: a call (getToken()), a field (cfg.Token),
// a plain identifier after "name = " (code, not a .env line) and a short
// number (token: 12).
func secretValue(v []byte, quoted, codeStyle bool) bool {
	if len(v) < 3 || !notReference(v) || bytes.HasPrefix(v, []byte("[REDACTED")) {
		return false
	}
	switch v[0] {
	case '<', '*', '/', '~', '#':
		return false
	case '.':
		if bytes.HasPrefix(v, []byte("./")) || bytes.HasPrefix(v, []byte("../")) {
			return false
		}
	}
	if len(v) > 2 && v[1] == ':' && (v[2] == '\\' || v[2] == '/') {
		return false // C:\…
	}
	for _, p := range placeholders {
		if len(v) == len(p) && bytes.EqualFold(v, []byte(p)) {
			return false
		}
	}
	if quoted {
		return true
	}
	if bytes.IndexByte(v, '(') >= 0 {
		return false
	}
	digits := 0
	for _, c := range v {
		if '0' <= c && c <= '9' {
			digits++
		}
	}
	if digits == len(v) && len(v) < 6 {
		return false
	}
	if isIdentPath(v) && (codeStyle || bytes.IndexByte(v, '.') >= 0) {
		return false
	}
	return true
}

// isIdentPath reports whether v is an identifier or a dotted path of them
// (token, cfg.Token, os.environ), as code has.
func isIdentPath(v []byte) bool {
	for _, part := range bytes.Split(v, []byte(".")) {
		if len(part) == 0 || ('0' <= part[0] && part[0] <= '9') {
			return false
		}
		for _, c := range part {
			if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				return false
			}
		}
	}
	return true
}

// replaceSpans appends to out text with each span replaced by
// [REDACTED:<rule>].
func replaceSpans(out, text []byte, spans []span) []byte {
	last := 0
	for _, s := range spans {
		out = append(out, text[last:s.start]...)
		out = append(out, "[REDACTED:"...)
		out = append(out, s.rule...)
		out = append(out, ']')
		last = s.end
	}
	return append(out, text[last:]...)
}

// quoteJSON appends s as a JSON string. Only what JSON requires is
// escaped; other text, non-ASCII included, stays as it was.
func quoteJSON(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
	}
	return append(b, '"')
}

// redactions is what a batch's redaction replaced, one entry per secret,
// so that only what was delivered is counted.
type redactions []redactHit

type redactHit struct {
	id, rule string // the event, the rule that found the secret
}

// events returns the events as they are to be sent: a changed payload is
// a new slice, the outbox's copy stays as it was.
func (r *redactor) events(events []event) ([]event, redactions) {
	if r == nil {
		return events, nil
	}
	var sent []event
	var hits redactions
	var id string
	found := func(rule string) { hits = append(hits, redactHit{id, rule}) }
	for i, e := range events {
		id = e.ID
		n := len(hits)
		p := r.payload(e.Payload, found)
		if len(hits) == n {
			continue
		}
		if sent == nil {
			sent = slices.Clone(events)
		}
		sent[i].Payload = p
	}
	if sent == nil {
		return events, nil
	}
	return sent, hits
}

// of counts, per rule, the secrets replaced in the events given, the ones
// delivered.
func (h redactions) of(events []event) map[string]int64 {
	if len(h) == 0 {
		return nil
	}
	ids := make(map[string]bool, len(events))
	for _, e := range events {
		ids[e.ID] = true
	}
	sum := map[string]int64{}
	for _, hit := range h {
		if ids[hit.id] {
			sum[hit.rule]++
		}
	}
	return sum
}

// redactedKey is the meta key that counts a rule's redactions, for status.
const redactedKey = "redacted:"

// redactionCounts reads the counts addRedactions stored out of the meta
// table; nil when nothing was ever redacted.
func redactionCounts(meta map[string]string) map[string]int64 {
	var c map[string]int64
	for k, v := range meta {
		rule, ok := strings.CutPrefix(k, redactedKey)
		if !ok {
			continue
		}
		var n int64
		fmt.Sscan(v, &n)
		if c == nil {
			c = map[string]int64{}
		}
		c[rule] = n
	}
	return c
}

// formatRedactions is status's line of counts: "3 aws-access-key-id, 1 jwt".
func formatRedactions(c map[string]int64) string {
	rules := slices.Sorted(maps.Keys(c))
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = fmt.Sprintf("%d %s", c[r], r)
	}
	return strings.Join(parts, ", ")
}
