package redact

import (
	"math/rand/v2"
	"testing"
)

// TestFixedPrefix holds the choice of rules to what the issue names: those
// whose secrets start with a fixed text of three characters or more.
func TestFixedPrefix(t *testing.T) {
	for _, tc := range []struct {
		pattern, prefix string
		ok              bool
	}{
		{`ghp_[0-9a-zA-Z]{36}`, "ghp_", true},
		{`\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`, "A3T", true},
		{`(?:https?://)?hooks.slack.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}`, "hooks", true},
		{`\b(EAA[MC](?i)[a-z0-9]{100,})(?:[\x60'"\s;]|\\[nr]|$)`, "EAAC", true},
		{`\b(ey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9\/\\_-]{17,}\.(?:[a-zA-Z0-9\/\\_-]{10,}={0,2})?)`, "ey", false},
		{`SK[0-9a-fA-F]{32}`, "SK", false},
		{`(?i)[\w.-]{0,50}?(?:access|auth|token)(?:[ \t\w.-]{0,20})`, "", false},
		{`\b((?:hvs\.[\w-]{90,120}|s\.(?i:[a-z0-9]{24})))`, "s.", false},
	} {
		prefix, ok := fixedPrefix(tc.pattern)
		if prefix != tc.prefix || ok != tc.ok {
			t.Errorf("fixedPrefix(%q) = %q, %v; want %q, %v", tc.pattern, prefix, ok, tc.prefix, tc.ok)
		}
	}
}

// TestGeneratorMatches checks that what the generator makes from every
// rule the recall test counts is mostly matched by the rule's own
// expression. Not always: the generator writes nothing for \b and $, and
// a string whose random neighbour breaks one is dropped by the recall
// test's gitleaks check, as gitleaks would not report it.
func TestGeneratorMatches(t *testing.T) {
	const tries = 20
	d := newDetector(t)
	g := &generator{rnd: rand.New(rand.NewPCG(7, 7))}
	for _, r := range prefixRules(d.Config) {
		matched := 0
		var example string
		for range tries {
			s, err := g.generate(r.Regex.String())
			if err != nil {
				t.Fatalf("%s: %v", r.RuleID, err)
			}
			if r.Regex.MatchString(s) {
				matched++
			} else {
				example = s
			}
		}
		if matched < tries/4 {
			t.Errorf("%s: %d of %d generated strings match, e.g. not %q", r.RuleID, matched, tries, example)
		}
	}
}
