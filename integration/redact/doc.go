// Package redact measures difflore's redaction against the field's anchor,
// gitleaks' default rule set, and against text nobody wrote for the test.
//
// TestRecall makes secrets from the regular expression of every gitleaks
// rule whose secrets start with a fixed prefix of three characters or more,
// keeps those that gitleaks' own detector reports, puts each into hook
// payloads shaped as agents send them, and runs the difflore binary's
// 'redact' command on each: it reports recall per rule and overall, names
// every secret that still leaves, and fails under a floor.
//
// TestFalsePositives runs the same command on real text (the Go standard
// library's source and test data, a real package-lock.json, go.sum files,
// the repository's git log) and names every replacement, per 10 MB.
//
// It is a module of its own so that gitleaks and its dependencies stay out
// of the product's go.mod and binary: the tests build the difflore binary
// from the repository root and run it as a subprocess, as a user would.
//
// Run it with:
//
//	cd integration/redact && go test -count=1 -v ./...
package redact
