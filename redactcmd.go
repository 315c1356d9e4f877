package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

const redactUsage = `
Usage: difflore redact [FILE|-]

Prints a payload as the daemon would send it, each secret replaced with
[REDACTED:<rule>], and on standard error how many secrets each rule
replaced. The payload is one JSON value, read from FILE, or from standard
input when FILE is - or absent. Nothing is queued or sent.

With DIFFLORE_REDACT=0, or redact = false in config.toml, the daemon sends
payloads as they were queued, and so does this command. The rules and
allowed values of config.toml (redact_rules, redact_allow) apply here too.

Example:
  printf '{"tool_input":{"command":"cat .env"},"tool_response":"AWS_ACCESS_KEY_ID=AKIA…"}' | difflore redact
`

// maxRedactInput bounds what redact reads: it checks rules on one payload,
// and enqueue takes none larger than maxPayload.
const maxRedactInput = 64 << 20

func cmdRedact(cfg config, args []string) error {
	fl := newFlagSet(cfg, "redact", redactUsage)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 1 {
		return usageError("redact takes one file at most, got %q", fl.Args())
	}
	in, name := cfg.stdin, "standard input"
	if f := fl.Arg(0); f != "" && f != "-" {
		file, err := os.Open(f)
		if err != nil {
			return withCode(2, fmt.Errorf("read payload: %w", err))
		}
		defer file.Close()
		in, name = file, fmt.Sprintf("%q", f)
	}
	p, err := io.ReadAll(io.LimitReader(in, maxRedactInput+1))
	if err != nil {
		return withCode(2, fmt.Errorf("read payload: %w", err))
	}
	if len(p) > maxRedactInput {
		return usageError("payload in %s is larger than %d MiB", name, maxRedactInput>>20)
	}
	if !json.Valid(p) {
		var v any
		err := json.Unmarshal(p, &v)
		if err == nil {
			err = errors.New("more than one value")
		}
		return usageError("payload in %s is not one valid JSON value: %v", name, err)
	}
	st, err := cfg.settings()
	if err != nil {
		return err
	}
	st.printWarnings(cfg.stderr)
	opts := st.redact
	r, err := newRedactor(opts)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	out := r.payload(p, func(rule string) { counts[rule]++ })
	if _, err := cfg.stdout.Write(out); err != nil {
		return err
	}
	switch {
	case opts.off && cfg.getenv(redactEnv) == "":
		fmt.Fprintln(cfg.stderr, "redaction is off (redact = false in config.toml): nothing replaced")
	case opts.off:
		fmt.Fprintf(cfg.stderr, "redaction is off (%s=%s): nothing replaced\n", redactEnv, cfg.getenv(redactEnv))
	case len(counts) == 0:
		fmt.Fprintln(cfg.stderr, "redacted: nothing")
	default:
		fmt.Fprintf(cfg.stderr, "redacted: %s\n", formatRedactions(counts))
	}
	return nil
}
