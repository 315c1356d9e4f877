package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	mathbits "math/bits"
	"regexp"
	"slices"
	"strconv"
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
	// rule runs only on text that holds one (see ruleSet). In a keyword,
	// # stands for any digit (anyDigit). A rule without keywords always
	// runs.
	keywords []string
	mask     keyBits        // bits of the keywords in the ruleSet
	re       *regexp.Regexp // group 1, when there is one, is what is replaced
	// lower runs re on the lower-cased text, for a rule whose names are
	// matched in any case: (?i) would cost the regexp its literal prefix,
	// and so its fast scan.
	lower bool
	// word requires the match not to follow a letter, for a prefix that
	// ends ordinary words too (task_, risk-, "a bearer"); a leading \b
	// would also cost the literal prefix. A rule whose prefix is a
	// provider's own (AKIA, ghp_, xoxb-) has none: in access_token%3Dghp_…
	// or key1AKIA… the letter or digit before it hides nothing.
	word bool
	// bounded requires the match not to run on into a letter or a
	// digit: a key of an exact length is no part of a longer word.
	bounded bool
	// alone requires the match to neither follow nor run on into base64
	// (a letter, a digit, + or /).
	alone bool
	// valid, when set, checks a match further; RE2 has no look-around.
	valid func(secret []byte) bool
	// opens marks the private-key rule: a key that runs to the end of its
	// string goes on in the strings after it (keyRun).
	opens bool
	// scan, when set, finds the matches instead of re, leftmost first and
	// without overlap as re would, calling found with each one's span.
	scan func(text []byte, found func(start, end int))
}

// ruleSet is the rules and an index of their keywords, which tells in one
// pass over a string which rules can match in it: most strings hold no
// keyword at all, and a rule whose keywords are absent is not run.
type ruleSet struct {
	rules    []redactRule
	keyEnd   *regexp.Regexp // a private key's END line
	keywords []string       // lower case, three bytes or more, # for any digit
	byFirst  [256][]uint8   // indexes into keywords, by first byte
	// starts has bit triple(c0, c1, c2) set when a keyword starts with
	// the bytes c0 c1 c2: one look-up rules out nearly every position of
	// a text.
	starts [1 << 10]uint64
	fold   [256]byte // ASCII lower case
	assign keyBits   // the bits of secretAnchors' anchors
	anchor []keyBits // the bit of each of secretAnchors
	keys   keyBits   // the bits of what a key that says secret holds
	always bool      // some rule has no keywords
	// byKeyword holds, for each keyword, the bits of the rules that have
	// it, and always those of the rules with none: find runs the rules of
	// the keywords a text holds without looking at the others.
	byKeyword []ruleBits
	alwaysRun ruleBits
}

// ruleBits has one bit per rule of a ruleSet, a custom rule's too.
type ruleBits []uint64

func (b ruleBits) set(i int) { b[i>>6] |= 1 << (i & 63) }

// maxKeywords is how many keywords a ruleSet indexes: one bit each in
// keyBits, and an index byte each in ruleSet.byFirst.
const maxKeywords = 256

// keyBits has one bit per keyword of a ruleSet. Four words rather than one
// keep the scan's test of a bit one load and one AND, whatever the number
// of rules.
type keyBits [maxKeywords / 64]uint64

func (b *keyBits) set(k int)      { b[k>>6] |= 1 << (k & 63) }
func (b *keyBits) has(k int) bool { return b[k>>6]&(1<<(k&63)) != 0 }

// any reports whether b and c share a bit.
func (b keyBits) any(c keyBits) bool {
	return b[0]&c[0] != 0 || b[1]&c[1] != 0 || b[2]&c[2] != 0 || b[3]&c[3] != 0
}

func (b keyBits) or(c keyBits) keyBits {
	return keyBits{b[0] | c[0], b[1] | c[1], b[2] | c[2], b[3] | c[3]}
}

// seen returns the bits of the keywords text holds, in any case.
func (rs *ruleSet) seen(text []byte) keyBits {
	var m keyBits
	if len(text) < 3 {
		return m
	}
	c0, c1 := rs.fold[text[0]], rs.fold[text[1]]
	for i := 0; i+2 < len(text); i++ {
		c2 := rs.fold[text[i+2]]
		t := triple(c0, c1, c2)
		c0, c1 = c1, c2
		if rs.starts[t>>6]&(1<<(t&63)) == 0 {
			continue
		}
		for _, k := range rs.byFirst[rs.fold[text[i]]] {
			kw := rs.keywords[k]
			if i+len(kw) > len(text) || m.has(int(k)) {
				continue
			}
			j := 1
			for j < len(kw) && (rs.fold[text[i+j]] == kw[j] || kw[j] == anyDigit && isDigit(text[i+j])) {
				j++
			}
			if j == len(kw) {
				m.set(int(k))
			}
		}
	}
	return m
}

// anyDigit in a keyword stands for any digit: the port of a .pgpass line
// (:####:) is any four digits. Other keywords, such as 4b1d, ask for the
// digits they hold: hashes and UUIDs hold digits and hex letters in every
// order.
const anyDigit = '#'

// digitsFor returns the bytes that c stands for in a keyword: itself, or
// the ten digits for anyDigit.
func digitsFor(c byte) string {
	if c == anyDigit {
		return "0123456789"
	}
	return string(c)
}

// triple is where a keyword's first three bytes, in lower case, have
// their bit in ruleSet.starts.
func triple(c0, c1, c2 byte) uint32 {
	return (uint32(c0)<<16 | uint32(c1)<<8 | uint32(c2)) * 2654435761 >> 16
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
	bit := func(k string) keyBits {
		i := slices.Index(rs.keywords, k)
		if i < 0 {
			if len(k) < 3 || strings.ToLower(k) != k {
				panic(fmt.Sprintf("redact: keyword %q is not lower case or shorter than three bytes", k))
			}
			if len(rs.keywords) == maxKeywords {
				panic(fmt.Sprintf("redact: more than %d keywords", maxKeywords))
			}
			i = len(rs.keywords)
			rs.keywords = append(rs.keywords, k)
			for _, c0 := range []byte(digitsFor(k[0])) {
				rs.byFirst[c0] = append(rs.byFirst[c0], uint8(i))
				for _, c1 := range []byte(digitsFor(k[1])) {
					for _, c2 := range []byte(digitsFor(k[2])) {
						t := triple(c0, c1, c2)
						rs.starts[t>>6] |= 1 << (t & 63)
					}
				}
			}
		}
		var b keyBits
		b.set(i)
		return b
	}
	for i := range rs.rules {
		for _, k := range rs.rules[i].keywords {
			rs.rules[i].mask = rs.rules[i].mask.or(bit(k))
		}
		rs.always = rs.always || rs.rules[i].mask == keyBits{}
	}
	for _, a := range secretAnchors {
		rs.anchor = append(rs.anchor, bit(a.anchor))
		rs.assign = rs.assign.or(rs.anchor[len(rs.anchor)-1])
	}
	rs.keys = rs.assign.or(bit("authorization")).or(bit("cookie"))
	words := (len(rs.rules) + 63) / 64
	rs.alwaysRun = make(ruleBits, words)
	rs.byKeyword = make([]ruleBits, len(rs.keywords))
	for k := range rs.byKeyword {
		rs.byKeyword[k] = make(ruleBits, words)
	}
	for i := range rs.rules {
		if rs.rules[i].mask == (keyBits{}) {
			rs.alwaysRun.set(i)
		}
		for k := range rs.keywords {
			if rs.rules[i].mask.has(k) {
				rs.byKeyword[k].set(i)
			}
		}
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
	opens := func(r *redactRule) { r.opens = true }
	lower := func(r *redactRule) { r.lower = true }
	valid := func(f func([]byte) bool) opt { return func(r *redactRule) { r.valid = f } }
	scan := func(f func([]byte, func(s, e int))) opt { return func(r *redactRule) { r.scan = f } }
	mk := func(name, pattern string, keywords []string, opts ...opt) redactRule {
		r := redactRule{name: name, keywords: keywords}
		if pattern != "" {
			r.re = regexp.MustCompile(pattern)
		}
		for _, o := range opts {
			o(&r)
		}
		return r
	}
	kw := func(k ...string) []string { return k }
	// In the armour lines of a key, a + stands for a space as a form
	// encodes one (-----BEGIN+EC+PRIVATE+KEY----- in a query).
	// The BEGIN line is read loosely (a key whose armour a copy mangled,
	// -----BEGINRSA PRIVATE KEY-----, is a key still); the END line is
	// read strictly, for a line that is not one would end the key early.
	keyBegin := regexp.MustCompile(`^-----BEGIN[A-Za-z0-9 +_-]{0,40}PRIVATE[ +]KEY(?:[ +]BLOCK)?-----`)
	keyEnd := regexp.MustCompile(`-----END[A-Z0-9 +]{0,40}[ +]PRIVATE[ +]KEY(?:[ +]BLOCK)?-----`)
	rules := []redactRule{
		// A key block is replaced whole, armour lines included; one cut
		// short (a head of the file, a line of a diff) to the end of the
		// text, and on in the strings that follow (keyRun).
		mk(privateKey, "", kw("-----begin"), opens, scan(func(text []byte, found func(s, e int)) {
			privateKeys(keyBegin, keyEnd, text, found)
		})),
		// One expression per prefix: each keeps a literal prefix to scan
		// for. A provider's prefix is its own, so neither a letter or a
		// digit before it (key1AKIA…) nor a word after it (AKIA…_prod)
		// keeps it from matching. A key id is random: base64 of zeros
		// (…AAAACCAAAAAAAA…) is not one.
		// AKIA…, ASIA…, ABIA…, ACCA… and 16 of [A-Z0-9], found by hand
		// (awsKeyIDs): where the prefixes are dense (AKIAAKIA…) the
		// regexp machine steps 16 states a byte.
		mk("aws-access-key-id", "", kw("akia", "asia", "abia", "acca"), scan(awsKeyIDs), valid(randomKeyID)),
		mk("aws-secret-access-key", `secret_?access_?key["']?\s*[:=]\s*["']?([a-z0-9/+]{40})(?:[^a-z0-9/+=]|$)`, kw("secret_access", "secretaccess"), lower),
		mk("github-token", `gh[pousr]_[A-Za-z0-9]{36,255}`, kw("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
		mk("github-pat", `github_pat_[A-Za-z0-9_]{22,255}`, kw("github_pat_")),
		mk("gitlab-token", `glpat-[A-Za-z0-9_-]{20,}`, kw("glpat-")),
		mk("slack-token", `xox[abposre]-[A-Za-z0-9-]{10,}`, kw("xox")),
		// Legacy tokens are four runs of digits and hex, as short as the
		// workspace's numbers are.
		mk("slack-token", `xox[os]-\d+-\d+-\d+-[a-fA-F0-9]+`, kw("xoxo-", "xoxs-")),
		// sk_, rk_ and sk- end words (task_test_…, risk-…): these must
		// not follow a letter.
		mk("stripe-key", `sk_(?:live|test|prod)_[A-Za-z0-9]{10,}`, kw("sk_"), word),
		mk("stripe-key", `rk_(?:live|test|prod)_[A-Za-z0-9]{10,}`, kw("rk_"), word),
		mk("anthropic-key", `sk-ant-[A-Za-z0-9_-]{32,}`, kw("sk-"), word),
		mk("openai-key", `sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}`, kw("sk-"), word, valid(mixedCase)),
		mk("google-api-key", `AIza[0-9A-Za-z_-]{35}`, kw("aiza")),
		mk("npm-token", `npm_[A-Za-z0-9]{36,}`, kw("npm_")),
		// Hugging Face tokens are letters, often with no digit at all.
		mk("huggingface-token", `hf_[A-Za-z0-9]{34,}`, kw("hf_"), valid(upperAndLower)),
		mk("sendgrid-key", `SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`, kw("sg.")),
		// The values of a Kubernetes Secret's data, base64 under names
		// that need not say secret (kubernetesSecrets).
		mk("kubernetes-secret", "", kw("kind:"), lower, scan(kubernetesSecrets)),
		// eyJ….eyJ….…, each part 8 or more of [A-Za-z0-9_-] (jwts).
		mk("jwt", "", kw("eyj"), scan(jwts)),
		// After Authorization: the scheme says what follows is a
		// credential. Standing alone, "bearer" is often prose ("a bearer
		// token"), so the credential must look like one.
		mk("authorization", `authorization["']?\s*[:=]\s*["']?(?:bearer|token)\s+([a-z0-9._~+/_-]+=*)`, kw("authorization"), lower),
		// Basic credentials are user:password in base64: text that does
		// not decode to one (a test's garbage), or whose password is an
		// example's (RFC 7617's Aladdin:open sesame), is none.
		mk("authorization", `authorization["']?\s*[:=]\s*["']?basic\s+([a-z0-9+/]+=*)`, kw("authorization"), lower, valid(basicCredentials)),
		mk("authorization", `bearer\s+([a-z0-9._~+/-]{16,}=*)`, kw("bearer"), lower, word, valid(hasDigit)),
		// scheme://user:password@host; the scheme is checked in find.
		mk("url-credentials", `://[^\s:/?#@"'<>]+:([^\s/?#@"'<>]+)@`, kw("://"), valid(urlPassword)),
		// The password of a line of a .pgpass, whose fields have no name
		// that says secret (pgpassLines): its port is three to five
		// digits, or *.
		mk("pgpass", "", kw(":###:", ":####:", ":#####:", ":*:"), scan(pgpassLines), valid(mayBeSecret)),
	}
	for _, p := range providerRules() {
		r := redactRule{name: p.name, keywords: p.keywords, word: p.word, bounded: p.bounded, alone: p.alone, valid: p.valid, scan: p.scan}
		if p.pattern != "" {
			r.re = regexp.MustCompile(p.pattern)
		}
		rules = append(rules, r)
	}
	rs := newRuleSet(rules)
	rs.keyEnd = keyEnd
	return rs
}

// privateKey is the name of the rule that replaces private-key blocks.
const privateKey = "private-key"

// mixedCase is true of a key's random part: upper and lower case letters
// and a digit, which a slug or an identifier of the same shape
// ("sk-learn-…") lacks.
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

// highEntropy is true of text whose bytes carry three bits of entropy or
// more each, as gitleaks asks of an AWS key id: AKIAIOSFODNN7EXAMPLE
// carries 3.7, AKIAAAAAAAAAAAAAAAAA 0.6.
func highEntropy(b []byte) bool {
	var n [256]int
	for _, c := range b {
		n[c]++
	}
	h := 0.0
	for _, c := range b {
		if k := n[c]; k > 0 {
			p := float64(k) / float64(len(b))
			h -= p * math.Log2(p)
			n[c] = 0 // counted
		}
	}
	return h >= 3
}

// randomKeyID is true of an AWS key id that may be random: three bits of
// entropy a byte or more (highEntropy), and no byte four times in a row,
// which zeros in base64 give (…ABIAAAAX19…) and random text seldom does.
func randomKeyID(b []byte) bool {
	for i := 3; i < len(b); i++ {
		if b[i] == b[i-1] && b[i] == b[i-2] && b[i] == b[i-3] {
			return false
		}
	}
	return highEntropy(b)
}

// upperAndLower is true of text with upper and lower case letters, as
// random letters have and a slug or an identifier (hf_hub_download) has not.
func upperAndLower(b []byte) bool {
	var upper, lower bool
	for _, c := range b {
		upper = upper || 'A' <= c && c <= 'Z'
		lower = lower || 'a' <= c && c <= 'z'
	}
	return upper && lower
}

func hasDigit(b []byte) bool { return bytes.ContainsAny(b, "0123456789") }

// notReference is false for a value that names a secret kept elsewhere
// (${DB_PASSWORD}, $TOKEN, {{ .Token }}, %(password)s) rather than holding it.
func notReference(b []byte) bool {
	return len(b) > 0 && b[0] != '$' && b[0] != '%' && !bytes.HasPrefix(b, []byte("{{"))
}

// urlPassword is true of the password of a URL's user:password@ that may
// be a secret: no reference to one, and no example's (user:password@,
// foo:bar@, u:xxxxx@, p%40ssword) once percent-decoded.
func urlPassword(b []byte) bool {
	if !notReference(b) || len(b) < 4 {
		return false
	}
	if len(b) > maxLabel {
		return true
	}
	var buf [maxLabel]byte
	d := buf[:0]
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) {
			if h, err := strconv.ParseUint(string(b[i+1:i+3]), 16, 8); err == nil {
				d = append(d, byte(h))
				i += 2
				continue
			}
		}
		d = append(d, b[i])
	}
	return len(d) >= 4 && !isLabel(d)
}

// basicCredentials is true of Basic credentials that decode to
// user:password, with a password that may be a secret.
func basicCredentials(b []byte) bool {
	if len(b) > 4*maxLabel {
		return true
	}
	dec, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		dec, err = base64.RawStdEncoding.DecodeString(string(b))
	}
	_, pass, ok := bytes.Cut(dec, []byte(":"))
	return err == nil && ok && utf8.Valid(dec) && mayBeSecret(pass)
}

// redactor replaces secrets in payloads. A nil *redactor replaces nothing:
// that is redaction turned off.
type redactor struct {
	*ruleSet
	allow    map[string]bool
	maxAllow int       // the length of the longest value in allow
	scratch  sync.Pool // of *scratch
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
		keyEnd := r.keyEnd
		r.ruleSet = newRuleSet(rules)
		r.keyEnd = keyEnd
	}
	if len(opts.allow) > 0 {
		r.allow = make(map[string]bool, len(opts.allow))
		for _, v := range opts.allow {
			r.allow[v] = true
			r.maxAllow = max(r.maxAllow, len(v))
		}
	}
	return r, nil
}

// allowed reports whether v is a value the options never replace. Only
// text as long as an allowed value is looked up: hashing every span of a
// payload of overlapping ones would cost the square of its size.
func (r *redactor) allowed(v []byte) bool {
	return len(v) <= r.maxAllow && r.allow[string(v)]
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
	lower   []byte // the string being scanned, lower case
	text    []byte // the string being scanned, decoded, when it has escapes
	repl    []byte // the string with its secrets replaced
	spans   []span
	spare   []span     // sortSpans merges spans into it, and the two swap
	bounds  []int      // where the runs of spans in order start
	view    [2][]byte  // decodeView's passes, each reading the other's
	at      [2][]int32 // where each byte of view came from
	find    finder
	run     valueRun // the last unquoted value an assignment gave
	line    lineTracker
	section sectionTracker
	hexes   []hexValue     // hex values given to names that say secret
	names   map[string]int // addHexes' place of each name in counts
	counts  []int          // addHexes' count of hex values per name
	run2    ruleBits       // the rules find runs on a text
	open    bool           // find saw a private key run to the end of its text
	steps   int            // bytes the scans stepped over, which TestRedactLinear counts
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
//
// Each string is read as it is and with its percent and backslash escapes
// undone (redactview.go); where the spans that rules find overlap, their
// union is replaced; a private key that begins in one string goes on in
// the strings after it (keyRun). The work is linear in the size of p on
// every input (TestRedactLinear, BenchmarkRedactAdversarial).
func (r *redactor) payload(p []byte, found func(rule string)) []byte {
	if r == nil {
		return p
	}
	sc, _ := r.scratch.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	defer r.scratch.Put(sc)
	return r.redact(sc, p, found)
}

// redact is payload with the scratch given.
func (r *redactor) redact(sc *scratch, p []byte, found func(rule string)) []byte {
	var out []byte // nil until the first replacement
	copied := 0    // p[:copied] is in out already
	secretValueAt := -1
	var key keyRun
	for i := 0; i < len(p); {
		q := bytes.IndexByte(p[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		if key.open {
			key.frame(p[i:start])
			sc.steps += start - i
		}
		end := stringEnd(p, start)
		if end < 0 {
			break
		}
		i = end
		after := skipSpace(p, end)
		isKey := after < len(p) && p[after] == ':'
		raw := p[start:end]
		// Most strings hold no escape and no keyword: nothing can be
		// found in them, and they are passed over after one scan.
		plain := r.plain(raw)
		sc.steps += len(raw)
		if plain.ok && plain.seen == (keyBits{}) && !key.open && start != secretValueAt {
			continue
		}
		text, ok := decodeString(sc.text[:0], raw)
		if !ok {
			continue
		}
		if len(text) > 0 && len(raw) > 2 && &text[0] != &raw[1] {
			sc.text = text[:0] // the decoded copy: keep its memory
		}
		sc.steps += len(raw)
		spans := r.spans(sc, text, isKey, &key, plain)
		if len(spans) == 0 && start == secretValueAt && mayBeSecret(text) && !r.allowed(text) {
			spans = append(spans, span{0, len(text), secretAssignment, 0})
		}
		secretValueAt = -1
		if isKey && (!plain.ok || plain.seen.any(r.keys)) && r.keySaysSecret(text) {
			secretValueAt = skipSpace(p, after+1)
		}
		if len(spans) == 0 {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(p)+64)
		}
		out = sc.replace(out, p[copied:start], text, spans, found)
		copied = end
	}
	if out == nil {
		return p
	}
	return append(out, p[copied:]...)
}

// replace appends to out the payload's bytes before, then the string text
// with its spans replaced, as JSON, and calls found with each span's rule.
func (sc *scratch) replace(out, before, text []byte, spans []span, found func(rule string)) []byte {
	out = append(out, before...)
	sc.repl = replaceSpans(sc.repl[:0], text, spans)
	out = quoteJSON(out, sc.repl)
	for _, s := range spans {
		found(s.rule)
	}
	return out
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

// spans returns the secrets in text, a string of the payload, in order,
// those that overlap merged into one (scratch.mergeSpans). It reads text as it is
// and, when text holds escapes, as it reads with them undone
// (scratch.decodeView). key is a private key begun in an earlier string:
// while it is open, text is the key's up to its END line.
//
// A plain string (plain.ok), one with no escape of any kind, is its own
// and only view, and the keywords it holds are plain.seen: it is not
// scanned for them again.
func (r *redactor) spans(sc *scratch, text []byte, isKey bool, key *keyRun, plain plainString) []span {
	sc.spans = sc.spans[:0]
	if key.open && !isKey {
		r.keyGoesOn(sc, text, key)
		if key.open && len(text) > 0 {
			// No END line: all of text is the key's and is replaced,
			// whatever else is in it (the body of a key, a line of an
			// Edit's patch per string).
			return sc.spans
		}
	}
	sc.open = false
	if plain.ok {
		r.findSeen(sc, text, isKey, viewMap{}, plain.seen)
	} else {
		r.find(sc, text, isKey, viewMap{})
		if view, m := sc.decodeView(text); view != nil {
			r.find(sc, view, isKey, m)
		}
	}
	if sc.open {
		*key = keyRun{open: true}
	}
	return sc.mergeSpans()
}

// keyRun follows a private key whose BEGIN line was in one string and
// whose END line has not come yet: an Edit's structuredPatch holds the
// lines of a file one per string. The strings after the BEGIN line in the
// same array or object (and in the arrays and objects within it) are the
// key's, up to and with its END line; object keys are names, and stay.
type keyRun struct {
	open  bool
	depth int // brackets opened since the key began, less those closed
}

// frame follows the brackets in p, JSON between two strings, and ends the
// run where the array or object that the key began in closes.
func (k *keyRun) frame(p []byte) {
	for _, c := range p {
		switch c {
		case '[', '{':
			k.depth++
		case ']', '}':
			if k.depth--; k.depth < 0 {
				k.open = false
				return
			}
		}
	}
}

// keyGoesOn adds the part of text that belongs to the open key: all of it,
// or up to the end of the END line, which closes the key.
func (r *redactor) keyGoesOn(sc *scratch, text []byte, key *keyRun) {
	sc.steps += len(text)
	end := len(text)
	if m := r.keyEnd.FindIndex(text); m != nil {
		end, key.open = m[1], false
	}
	if end > 0 {
		sc.spans = append(sc.spans, span{0, end, privateKey, 0})
	}
}

// find adds to sc.spans the secrets in text, a string of the payload or a
// view of one (vm maps the view's offsets back to the string's).
func (r *redactor) find(sc *scratch, text []byte, isKey bool, vm viewMap) {
	if len(text) < minSecret {
		return
	}
	sc.steps += len(text)
	r.findSeen(sc, text, isKey, vm, r.seen(text))
}

// findSeen is find with the keywords text holds given.
func (r *redactor) findSeen(sc *scratch, text []byte, isKey bool, vm viewMap, seen keyBits) {
	if len(text) < minSecret || seen == (keyBits{}) && !r.always {
		return // no keyword: no rule can match
	}
	sc.lower = asciiLower(sc.lower[:0], text)
	first := len(sc.spans) // the spans found in text start here
	f := &sc.find
	f.r, f.sc, f.text, f.vm = r, sc, text, vm
	if f.scanned == nil {
		f.scanned = f.found // bound once: a scan's calls allocate nothing
	}
	// The rules to run: those of each keyword seen, and those with none.
	run := append(sc.run2[:0], r.alwaysRun...)
	for w, bits := range seen {
		for ; bits != 0; bits &= bits - 1 {
			for j, b := range r.byKeyword[w*64+mathbits.TrailingZeros64(bits)] {
				run[j] |= b
			}
		}
	}
	sc.run2 = run
	for w, bits := range run {
		for ; bits != 0; bits &= bits - 1 {
			i := w*64 + mathbits.TrailingZeros64(bits)
			f.match(&r.rules[i], i)
		}
	}
	if isKey || !seen.any(r.assign) {
		return
	}
	// A value that looks like code is still replaced where it holds what
	// a rule found (client_secret=<secret>.<JWT> is a dotted path too):
	// the union of the two is the secret.
	found := sc.spans[first:]
	slices.SortFunc(found, func(a, b span) int { return a.start - b.start })
	holds := func(s, e int) bool {
		i, _ := slices.BinarySearchFunc(found, s, func(sp span, s int) int { return sp.start - s })
		return i < len(found) && found[i].start < e
	}
	sc.run = valueRun{start: -1}
	sc.hexes = sc.hexes[:0]
	// In a run of names that each start the value of the one before
	// (token=token=…), each value holds the next: a value within the
	// last one added adds nothing to the union of the spans, and is not
	// added, or the spans would grow with every name.
	lastS, lastE := 0, -1
	for i, a := range secretAnchors {
		if seen.any(r.anchor[i]) {
			findAssignments(sc, text, a.anchor, a.names, func(s, e int, kind valueKind, name int) {
				switch {
				case kind == secretValue && e-s >= minHexVector && allHex(text[s:e]):
					sc.hexes = append(sc.hexes, hexValue{s, e, name})
				case s >= lastS && e <= lastE:
				case kind == secretValue || holds(vm.orig(s), vm.orig(e)):
					n := len(sc.spans)
					if f.add(s, e, secretAssignment, len(r.rules)); len(sc.spans) > n {
						lastS, lastE = s, e
					}
				}
			})
		}
	}
	sc.addHexes(text, func(s, e int) { f.add(s, e, secretAssignment, len(r.rules)) })
}

// hexValue is a value of hex digits alone given to a name that says secret:
// text[start:end], the name starting at name.
type hexValue struct{ start, end, name int }

// minHexVector is the fewest hex digits a value has for addHexes to weigh
// it: 64 bits, a key's least.
const minHexVector = 16

// maxVectors is how many hex values one name may be given in a text before
// they are read as a table of test vectors: a test of a cipher or a key
// exchange gives PrivateKey, SharedSecret or "shared_secret" a value per
// case, where a configuration gives a key one (or one per environment).
const maxVectors = 2

// addHexes calls add with each of sc.hexes, but for those whose name the
// text gives more than maxVectors hex values. A name is the identifier
// that holds it (SharedSecret, exporter_secret), in any case.
func (sc *scratch) addHexes(text []byte, add func(s, e int)) {
	if len(sc.hexes) == 0 {
		return
	}
	clear(sc.names)
	if sc.names == nil {
		sc.names = map[string]int{}
	}
	// The map holds each name's place in sc.counts: a name is made a
	// string (and allocated) once per text, not once per value, as
	// sc.names[string(name)]++ would.
	counts := sc.counts[:0]
	for _, h := range sc.hexes {
		id := sc.identifier(text, h.name)
		k, ok := sc.names[string(id)]
		if !ok {
			k = len(counts)
			sc.names[string(id)] = k
			counts = append(counts, 0)
		}
		counts[k]++
	}
	sc.counts = counts
	for _, h := range sc.hexes {
		if counts[sc.names[string(sc.identifier(text, h.name))]] <= maxVectors {
			add(h.start, h.end)
		}
	}
}

// identifier returns, lower case, the identifier that ends with the name
// that starts at text[name]: the letters, digits, '_', '-' and '.' before
// it, up to maxLabel bytes, and the name.
func (sc *scratch) identifier(text []byte, name int) []byte {
	s := name
	for s > 0 && name-s < maxLabel && (isWordByte(text[s-1]) || text[s-1] == '-' || text[s-1] == '.') {
		s--
	}
	e := name
	for e < len(text) && e-s < 2*maxLabel && isWordByte(text[e]) {
		e++
	}
	return sc.lower[s:e]
}

// finder is what a find is doing: the text it reads (a string or a view
// of one), the map of the view to the string, and the rule it runs. It
// lives in the scratch, so that the call a scan makes for each match
// allocates nothing.
type finder struct {
	r       *redactor
	sc      *scratch
	text    []byte // the string or its view
	in      []byte // what the rule reads: text, or its lower case
	vm      viewMap
	rule    *redactRule
	prio    int            // the rule's place in the list
	scanned func(s, e int) // found, bound once
}

// add adds the span text[s:e] that rule found, unless its value is one the
// options allow. prio is the rule's place in the list: of spans that start
// together, the lower names their union.
func (f *finder) add(s, e int, rule string, prio int) {
	if s < e && !f.r.allowed(f.text[s:e]) {
		f.sc.spans = append(f.sc.spans, span{f.vm.orig(s), f.vm.orig(e), rule, prio})
	}
}

// match adds what rule, the i-th, finds in the text.
func (f *finder) match(rule *redactRule, i int) {
	f.rule, f.prio, f.in = rule, i, f.text
	if rule.lower {
		f.in = f.sc.lower
	}
	f.sc.steps += len(f.in)
	if rule.scan != nil {
		rule.scan(f.in, f.scanned)
		return
	}
	for _, m := range rule.re.FindAllSubmatchIndex(f.in, -1) {
		gs, ge := -1, -1
		if len(m) >= 4 && m[2] >= 0 {
			gs, ge = m[2], m[3]
		}
		f.try(m[0], m[1], gs, ge)
	}
}

// found is a scan's match at text[s:e].
func (f *finder) found(s, e int) { f.try(s, e, -1, -1) }

// try adds the match text[s0:e0] of the rule when it stands as the rule
// asks; [gs, ge), when gs ≥ 0, is the part of it that is replaced.
func (f *finder) try(s0, e0, gs, ge int) {
	rule := f.rule
	if !rule.fits(f.text, s0, e0) {
		return
	}
	if rule.name == "url-credentials" && (s0 == 0 || !isLetter(f.text[s0-1])) {
		return // no scheme before ://
	}
	s, e := s0, e0
	if gs >= 0 {
		s, e = gs, ge
	}
	if rule.valid != nil && !rule.valid(f.text[s:e]) {
		return
	}
	if rule.opens && e == len(f.in) && !f.r.keyEnd.Match(f.in[s:e]) {
		f.sc.open = true // cut short: the key goes on in the strings that follow
	}
	f.add(s, e, rule.name, f.prio)
}

// fits reports whether text[s:e], a match, stands as the rule asks of
// what is around it (redactRule.word, alone, bounded).
func (rule *redactRule) fits(text []byte, s, e int) bool {
	switch {
	case rule.word && s > 0 && isLetter(text[s-1]):
		return false
	case rule.alone && (s > 0 && isBase64(text[s-1]) || e < len(text) && isBase64(text[e])):
		return false
	case rule.bounded && e < len(text) && (isLetter(text[e]) || isDigit(text[e])):
		return false
	}
	return true
}

// privateKeys finds private-key blocks in text: a BEGIN line (begin, which
// reads only the start of what it is given) through the first END line
// (end) after it, or to the end of text. Found by hand rather than with one
// expression, a BEGIN that is no key's is given up on within a line's
// length, and the search for an END line is made once per key.
func privateKeys(begin, end *regexp.Regexp, text []byte, found func(start, end int)) {
	const maxBegin = 80 // -----BEGIN, 40 bytes, PRIVATE KEY BLOCK-----
	for i := 0; ; {
		b := bytes.Index(text[i:], []byte("-----BEGIN"))
		if b < 0 {
			return
		}
		b += i
		w := text[b:min(len(text), b+maxBegin)]
		var h []int
		if bytes.Contains(w, []byte("PRIVATE")) { // most BEGIN lines are no key's: look before asking begin
			h = begin.FindIndex(w)
		}
		if h == nil {
			i = b + 1
			continue
		}
		head := b + h[1]
		m := end.FindIndex(text[head:])
		if m == nil {
			found(b, len(text))
			return
		}
		found(b, head+m[1])
		i = head + m[1]
	}
}

// jwts finds JSON web tokens in text: eyJ, 8 or more of [A-Za-z0-9_-],
// a dot, the same again, a dot, 8 or more of [A-Za-z0-9_-], as the
// expression eyJ[…]{8,}\.eyJ[…]{8,}\.[…]{8,} would, leftmost first. Where
// a token that starts at one eyJ fails, so does one at any eyJ in the
// same run of characters (its first part ends where this one's does), so
// the search goes on past the run: each byte is looked at a bounded number
// of times, where the regexp machine, for dense eyJ, steps many states a
// byte.
func jwts(text []byte, found func(start, end int)) {
	run := func(k int) int { // the end of the run of [A-Za-z0-9_-] at k
		for k < len(text) && (isWordByte(text[k]) || text[k] == '-') {
			k++
		}
		return k
	}
	part := func(k int, eyJ bool) (end int, ok bool) {
		from := k
		if eyJ {
			if !bytes.HasPrefix(text[k:], []byte("eyJ")) {
				return k, false
			}
			from = k + 3
		}
		end = run(from)
		return end, end-from >= 8
	}
	for i := 0; ; {
		j := bytes.Index(text[i:], []byte("eyJ"))
		if j < 0 {
			return
		}
		i += j
		e1, ok := part(i, true)
		if ok && e1 < len(text) && text[e1] == '.' {
			e2, ok := part(e1+1, true)
			if ok && e2 < len(text) && text[e2] == '.' {
				if e3, ok := part(e2+1, false); ok {
					found(i, e3)
					i = e3
					continue
				}
			}
		}
		i = max(e1, i+1)
	}
}

// awsKeyIDs finds AWS access key ids in text: AKIA, ASIA, ABIA or ACCA,
// and 16 of [A-Z0-9]. It looks at each byte a bounded number of times.
func awsKeyIDs(text []byte, found func(start, end int)) {
	const n = 20
	for i := 0; i+n <= len(text); {
		a := bytes.IndexByte(text[i:len(text)-n+1], 'A')
		if a < 0 {
			return
		}
		i += a
		switch string(text[i : i+4]) {
		case "AKIA", "ASIA", "ABIA", "ACCA":
		default:
			i++
			continue
		}
		k := i + 4
		for k < i+n && ('A' <= text[k] && text[k] <= 'Z' || isDigit(text[k])) {
			k++
		}
		if k < i+n {
			i++
			continue
		}
		found(i, i+n)
		i += n
	}
}

// mergeSpans sorts sc.spans by where they start and merges those that
// overlap into their union, named for the rule of the span that starts
// first (of spans that start together, the rule that comes first in the
// list): where an assignment holds a key id and a secret key, or a secret
// and a JWT, all of it is replaced.
func (sc *scratch) mergeSpans() []span {
	sc.sortSpans()
	kept := sc.spans[:0]
	for _, s := range sc.spans {
		if n := len(kept); n > 0 && s.start < kept[n-1].end {
			kept[n-1].end = max(kept[n-1].end, s.end)
			continue
		}
		kept = append(kept, s)
	}
	return kept
}

// sortSpans sorts sc.spans by where they start, and by rule. They come in
// runs already in order, one for each rule and each name that found some
// (find adds them so), so it merges the runs, two by two, rather than sort
// afresh: a .env of 100,000 passwords would spend most of its time in a
// sort that compares them all again.
func (sc *scratch) sortSpans() {
	before := func(a, b span) bool { return a.start < b.start || a.start == b.start && a.prio < b.prio }
	bounds := append(sc.bounds[:0], 0)
	for i := 1; i < len(sc.spans); i++ {
		if before(sc.spans[i], sc.spans[i-1]) {
			bounds = append(bounds, i)
		}
	}
	bounds = append(bounds, len(sc.spans))
	for len(bounds) > 2 {
		out := sc.spare[:0]
		next := bounds[:1]
		for k := 0; k+1 < len(bounds); k += 2 {
			lo, mid, hi := bounds[k], bounds[k+1], bounds[min(k+2, len(bounds)-1)]
			a, b := sc.spans[lo:mid], sc.spans[mid:hi]
			for len(a) > 0 && len(b) > 0 {
				if before(b[0], a[0]) {
					out, b = append(out, b[0]), b[1:]
				} else {
					out, a = append(out, a[0]), a[1:]
				}
			}
			out = append(append(out, a...), b...)
			next = append(next, hi)
		}
		sc.spare, sc.spans = sc.spans[:0], out
		bounds = next
	}
	sc.bounds = bounds[:0]
}

func isBase64(c byte) bool { return isLetter(c) || isDigit(c) || c == '+' || c == '/' }

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
	if len(key) > 64 || !rs.seen(key).any(rs.keys) {
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
// anchor, in text: name=value (.env, a shell, a query string), name: value
// (YAML, a header), "name": "value" (JSON quoted inside a string) and
// 'name' => 'value' (PHP, Ruby, Perl). It calls add with the span of each
// value that may be a secret, its kind, and where its name starts; a
// quoted value's quotes stay.
func findAssignments(sc *scratch, text []byte, anchor string, names []string, add func(start, end int, kind valueKind, name int)) {
	sc.line = lineTracker{}
	sc.section = sectionTracker{}
	for off := 0; ; {
		i := bytes.Index(sc.lower[off:], []byte(anchor))
		if i < 0 {
			sc.steps += len(text) - off
			return
		}
		i += off
		sc.steps += i + 1 - off
		off = i + 1
		for _, name := range names {
			start := i
			if len(name) > len(anchor) && name[len(name)-len(anchor):] == anchor {
				start = i + len(anchor) - len(name) // a name that ends in the anchor
			}
			if start < 0 || !bytes.HasPrefix(sc.lower[start:], []byte(name)) {
				continue
			}
			if s, e, kind := sc.assignedValue(text, start, start+len(name), i); kind != notSecret {
				add(s, e, kind, start)
			}
		}
	}
}

// lineTracker finds where the line of a position starts, for positions
// asked in increasing order: each byte of the text is looked at once.
type lineTracker struct {
	upTo  int // the bytes before upTo have been looked at
	start int // where the line that holds upTo starts
}

// lineStart returns where the line holding text[i] starts; i is no less
// than in the call before.
func (lt *lineTracker) lineStart(text []byte, i int) int {
	if lt.upTo < i {
		if nl := bytes.LastIndexByte(text[lt.upTo:i], '\n'); nl >= 0 {
			lt.start = lt.upTo + nl + 1
		}
		lt.upTo = i
	}
	return lt.start
}

// inCodeComment reports whether the line that holds text[i] is a comment of
// C, Go, JavaScript and the like: it starts with //, blanks aside.
func (sc *scratch) inCodeComment(text []byte, i int) bool {
	s := sc.line.lineStart(text, i)
	for s < i && (text[s] == ' ' || text[s] == '\t') {
		s++
	}
	return s+1 < i && text[s] == '/' && text[s+1] == '/'
}

// secretAnchors are the names that say secret, lower case, grouped by a
// part each holds at its start or at its end, so that findAssignments
// searches the text for five strings, not for every name.
var secretAnchors = []struct {
	anchor string
	names  []string
}{
	{"pass", []string{"password", "passwd", "passphrase"}},
	{"secret", []string{"secret", "secret_key_base"}},
	{"token", []string{"token"}},
	{"credential", []string{"credentials", "credential"}},
	{"key", []string{"apikey", "api_key", "api-key", "accesskey", "access_key", "access-key",
		"secretkey", "secret_key", "secret-key", "privatekey", "private_key", "private-key"}},
}

// assignedValue reads what follows a name that starts at name and ends at
// j (its anchor at i): an optional closing quote, '=' or ':' with optional
// blanks around it (sc.separator), and the value. It reports the value's
// span and what it is.
func (sc *scratch) assignedValue(text []byte, name, j, i int) (start, end int, kind valueKind) {
	sep, ok := sc.separator(text, name, j)
	if !ok {
		if s, e, ok := sc.netrcPassword(text, name, j); ok {
			return s, e, secretValue
		}
		return 0, 0, notSecret
	}
	v := sep.value
	quoted := false
	if q := text[v]; q == '"' || q == '\'' || q == '`' {
		s, e, kind, closed := sc.quotedValue(text, v)
		if closed {
			return s, e, kind
		}
		// A quote that does not close on its line ("secret_key" =>
		// "sk_…, a value cut where a line of a file ends) opens a
		// literal that runs to where an unquoted value ends.
		if v++; v >= len(text) {
			return 0, 0, notSecret
		}
		quoted = true
	} else if sep.arrow {
		return 0, 0, notSecret // an arrow's unquoted value is code
	}
	run := &sc.run
	if v < run.start || v > run.end {
		run.read(text, v)
		sc.steps += run.end - v
	}
	switch {
	case quoted:
		if !mayBeSecret(text[v:run.end]) {
			return 0, 0, notSecret
		}
		return v, run.end, secretValue
	case sc.inCodeComment(text, i):
		// A comment of code holds grammar and examples (// token =
		// 1*tchar), not a setting.
		return 0, 0, notSecret
	}
	// "name = value" is code, not a .env line; so is "Name: value," and
	// "Name: value}", a field of a struct or an object literal in Go or
	// JavaScript, where YAML ends the line.
	codeStyle := sep.c == '=' && sep.spaced || sep.c == ':' && endsField(text, run.end)
	kind = run.kind(text, v, codeStyle)
	if kind == codeValue && codeStyle && sep.c == '=' && sc.configValue(text, name, v, run.end) {
		kind = secretValue // password = Xk29fjsLq02, a line of an .ini file
	}
	// A short lower-case word after a colon is a setting (passwd:
	// compat, token: required), not a secret.
	if kind == secretValue && sep.c == ':' && run.end-v <= 8 && allLower(text[v:run.end]) {
		return 0, 0, notSecret
	}
	return v, run.end, kind
}

// separator is what stands between a name and its value.
type separator struct {
	c      byte // '=' or ':'
	spaced bool // blanks on both sides: name = value
	arrow  bool // =>, after a quoted name
	value  int  // where the value starts
}

// separator reads what follows a name that starts at name and ends at j:
// an optional closing quote, '=' or ':' with optional blanks around it. ok
// is false when that is no assignment.
func (sc *scratch) separator(text []byte, name, j int) (sep separator, ok bool) {
	n := len(text)
	blank := func(k int) int {
		from := k
		for k < n && (text[k] == ' ' || text[k] == '\t') {
			k++
		}
		sc.steps += k - from
		return k
	}
	quotedName := j < n && (text[j] == '"' || text[j] == '\'')
	if quotedName {
		j++
	}
	at := blank(j) // the separator
	if at >= n || (text[at] != '=' && text[at] != ':') {
		return sep, false
	}
	sep.c = text[at]
	k := at + 1
	// ==, =>, := and :: are code: a comparison, an arrow, a declaration,
	// a path; but 'name' => 'value' is a member of a PHP, Ruby or Perl
	// hash.
	sep.arrow = sep.c == '=' && quotedName && k < n && text[k] == '>'
	if sep.arrow {
		k++
	} else if k < n && (text[k] == '=' || text[k] == '>' || text[k] == ':') {
		return sep, false
	}
	// groupname:password:GID names the fields of a record, /etc/group's;
	// it gives password no value.
	if sep.c == ':' && name > 0 && text[name-1] == ':' {
		return sep, false
	}
	sep.value = blank(k)
	sep.spaced = at > j && sep.value > k
	return sep, sep.value < n
}

// allLower reports whether b is lower-case letters only.
func allLower(b []byte) bool {
	for _, c := range b {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// endsField reports whether text[e] ends a field of a literal in code:
// Name: value, or Name: value}.
func endsField(text []byte, e int) bool {
	return e < len(text) && (text[e] == ',' || text[e] == '}')
}

// quotedValue reads the value that the quote text[v] opens, which ends at
// the same quote on the same line; closed is false when there is none.
func (sc *scratch) quotedValue(text []byte, v int) (start, end int, kind valueKind, closed bool) {
	// The quote is found once per value: two values that open with the
	// same quote cannot hold each other.
	e := bytes.IndexByte(text[v+1:], text[v])
	if e < 0 {
		sc.steps += len(text) - v
		return 0, 0, notSecret, false
	}
	s, e := v+1, v+1+e
	sc.steps += 2 * (e - v)
	if bytes.IndexByte(text[s:e], '\n') >= 0 {
		return 0, 0, notSecret, false
	}
	if !mayBeSecret(text[s:e]) {
		return 0, 0, notSecret, true
	}
	return s, e, secretValue, true
}

// valueRun is the last unquoted value assignedValue read, and what
// valueRun.kind asks of any part of it that runs to its end. In
// token=token=token=… every name starts a value that ends where the first
// one ends; read again for each, the text would cost the square of its
// size.
type valueRun struct {
	start, end int // text[start:end] is the value
	paren      int // the last '(' in it, or -1
	dot        int // the last '.', or -1
	// notPath is the last byte that no identifier or dotted path of
	// them (cfg.Token) holds there: a byte of neither, or a '.' at the
	// end or before another '.' or a digit. -1 if none.
	notPath int
	// index is the first '[' or '{', -1 if none, and beforeIndex the last
	// byte before it that no dotted path holds, -1 if none: tokens[1:],
	// map[Level]secret and signer{key} are code.
	index, beforeIndex int
	// notLetter is the last byte that is not a letter, -1 if none, and
	// upper the last upper-case letter, -1 if none: a word that prose
	// goes on after (token: got an error) is no secret.
	notLetter, upper int
}

// read reads the unquoted value that starts at text[v].
func (run *valueRun) read(text []byte, v int) {
	end := v
	for end < len(text) && !valueEnds[text[end]] {
		end++
	}
	// Locals, not the run's fields, while the bytes are read: every
	// value of a run of assignments is read (token=a token=b …).
	paren, dot, notPath, index, beforeIndex, notLetter, upper := -1, -1, -1, -1, -1, -1, -1
	for k := v; k < end; k++ {
		c := text[k]
		if !isLetter(c) {
			notLetter = k
		} else if 'A' <= c && c <= 'Z' {
			upper = k
		}
		if (c == '[' || c == '{') && index < 0 {
			index, beforeIndex = k, notPath
		}
		switch {
		case c == '(':
			paren, notPath = k, k
		case c == '.':
			dot = k
			if k+1 == end || text[k+1] == '.' || isDigit(text[k+1]) {
				notPath = k
			}
		case !isWordByte(c):
			notPath = k
		}
	}
	*run = valueRun{start: v, end: end, paren: paren, dot: dot, notPath: notPath, index: index, beforeIndex: beforeIndex,
		notLetter: notLetter, upper: upper}
}

// kind tells a secret from what stands in its place (mayBeSecret), and
// from code and counts: a call (getToken()), a field (cfg.Token), a plain
// identifier after "name = " (code, not a .env line) and a short number
// (token: 12). The value is text[v:run.end], which starts within the run:
// what it asks of the whole value, it learns from the run.
func (run *valueRun) kind(text []byte, v int, codeStyle bool) valueKind {
	s := text[v:run.end]
	switch {
	case !mayBeSecret(s):
		return notSecret
	case run.paren >= v, len(s) < 6 && allDigits(s), s[0] == '-' && len(s) < 7 && allDigits(s[1:]):
		return codeValue
	}
	path := run.notPath < v && s[0] != '.' && !isDigit(s[0])
	if path && (codeStyle || run.dot >= v) {
		return codeValue
	}
	if run.index > v && run.beforeIndex < v && isLetter(s[0]) {
		return codeValue // an index or a composite literal: tokens[1:], signer{key}
	}
	// A word, lower case, capitalized or words in camel case, that prose
	// goes on after: in "bad token: got %s" and "enc.EncodeToken:
	// StartElement %s", got and StartElement are no tokens.
	e := run.end
	if run.notLetter < v && (run.upper <= v || camelWords(s)) && e+1 < len(text) && text[e] == ' ' && (isLetter(text[e+1]) || text[e+1] == '%') {
		return notSecret
	}
	return secretValue
}

// camelWords is true of letters that read as words in camel case
// (StartElement, readSecret): each upper-case letter starts a word of three
// letters or more, as random letters seldom do.
func camelWords(b []byte) bool {
	if len(b) > maxLabel {
		return false
	}
	lower := 0 // lower-case letters since the last upper-case one
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			if i > 0 && lower < 2 {
				return false
			}
			lower = 0
			continue
		}
		lower++
	}
	return lower >= 2
}

// valueKind is what assignedValue makes of a value.
type valueKind int

const (
	notSecret   valueKind = iota // no value, or one that stands for a secret
	codeValue                    // code or a count, a secret only where a rule finds one in it
	secretValue                  // a secret
)

// valueEnds has set the bytes that end an unquoted value: a blank, a
// quote, a separator of a list, a query or a command, a closing bracket.
// It is a table, one look-up a byte: a valueRun reads every byte of
// every value of a run of assignments.
var valueEnds = func() (t [256]bool) {
	for _, c := range []byte(" \t\r\n\"'`,;&<>)]}|") {
		t[c] = true
	}
	return t
}()

// placeholders are values that stand for a secret rather than being one.
var placeholders = []string{
	"null", "nil", "none", "true", "false", "undefined", "required", "optional",
	"string", "str", "bool", "boolean", "int", "number", "object", "any",
	"secret", "password", "token", "redacted", "xxx", "xxxx", "...", "…",
}

// mayBeSecret tells a secret from what stands in its place: an empty
// value, a reference to one kept elsewhere, a path (to a key file, a
// secrets mount), a placeholder, one already redacted. An unquoted value
// is asked more (valueRun.kind).
func mayBeSecret(v []byte) bool {
	if len(v) < 3 || !notReference(v) || bytes.HasPrefix(v, []byte("[REDACTED")) || !hasAlnum(v[:min(len(v), maxLabel)]) {
		return false
	}
	switch v[0] {
	case '<', '*', '/', '~', '#', '\\':
		return false // a placeholder, a path, a comment, an escape (\u2603, \n)
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
	return len(v) > maxLabel || !isLabel(v)
}

// maxLabel is the longest value isLabel looks into: mayBeSecret is asked
// of every value of a run of assignments (token=token=…), and must stay
// within a constant of the run's length.
const maxLabel = 64

// isLabel is true of a short value that names or stands for a secret
// rather than holding one: a hex constant of a machine word (TOKEN =
// 0x000C, a flag), a name that says secret itself (testRSAPrivateKey,
// X-Fake-Connection-Token, password16), a well-known placeholder however
// spelled (changeme, p@ssword, secr3t, xxxxx, ***), a value cut short (AKIA…),
// or words with no digit (this should be ignored).
func isLabel(v []byte) bool {
	var buf, norm [maxLabel]byte
	low := asciiLower(buf[:0], v)
	if hexWord(low) || bytes.Contains(v, []byte("…")) || bytes.Contains(v, []byte("...")) {
		return true
	}
	for _, w := range secretWords {
		if bytes.Contains(low, w) {
			return true
		}
	}
	// The letters and digits of the value, with those that stand for
	// letters in weak passwords (p@ssw0rd, secr3t) read as letters.
	n := norm[:0]
	same, space, digit := true, false, false
	for i, c := range low {
		same = same && c == low[0]
		space = space || c == ' '
		digit = digit || isDigit(c)
		if j := strings.IndexByte("@0$1!3", c); j >= 0 && i > 0 {
			c = "aosiie"[j]
		}
		if isLetter(c) || isDigit(c) {
			n = append(n, c)
		}
	}
	if same || space && !digit {
		return true
	}
	return slices.Contains(wellKnownValues, string(n))
}

// hexWord is true of 0x and at most 16 hex digits, with an optional sign.
func hexWord(low []byte) bool {
	low = bytes.TrimPrefix(low, []byte("-"))
	if len(low) < 3 || len(low) > 18 || low[0] != '0' || low[1] != 'x' {
		return false
	}
	for _, c := range low[2:] {
		if !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// secretWords in a value make it a name for a secret, not one.
// They are bytes, as isLabel looks for them in every value of a run of
// assignments: a string would be copied to bytes at each look.
var secretWords = [][]byte{[]byte("password"), []byte("passwd"), []byte("secret"), []byte("token"),
	[]byte("credential"), []byte("privatekey"), []byte("private_key")}

// wellKnownValues are the letters of values that examples and tests use
// for a password: foo:bar, changeme, RFC 7617's Aladdin:open sesame.
var wellKnownValues = []string{
	"password", "pasword", "passwd", "pass", "pwd", "secret", "changeme", "changeit", "letmein",
	"foo", "bar", "baz", "foobar", "test", "example", "dummy", "opensesame", "hunter2",
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// allHex reports whether b is hex digits alone.
func allHex(b []byte) bool {
	for _, c := range b {
		if !isHex(c) {
			return false
		}
	}
	return true
}

// hasAlnum reports whether b holds an ASCII letter or digit: a value of
// symbols alone ("@/?!", an emoji) is punctuation, not a secret.
func hasAlnum(b []byte) bool {
	for _, c := range b {
		if isLetter(c) || isDigit(c) {
			return true
		}
	}
	return false
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
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

// plainString is what redactor.plain tells of a string.
type plainString struct {
	ok   bool    // the string holds no escape: its raw bytes are its text
	seen keyBits // the keywords it holds, when ok
}

// plain tells whether the JSON string raw, quotes included, holds no
// escape of any kind (JSON's, percent-encoding), and which keywords it
// holds. With a rule that has no keywords, it tells nothing.
func (r *redactor) plain(raw []byte) plainString {
	inner := raw[1 : len(raw)-1]
	if r.always || bytes.IndexByte(inner, '\\') >= 0 || bytes.IndexByte(inner, '%') >= 0 {
		return plainString{}
	}
	return plainString{ok: true, seen: r.seen(inner)}
}
