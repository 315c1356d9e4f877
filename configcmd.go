package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

const configUsage = `
Usage:
  difflore config get [--show-token] KEY
  difflore config set KEY VALUE      (VALUE - for token: read it from stdin)
  difflore config unset KEY
  difflore config list
  difflore config path

Shows and edits the settings of this data home, in config.toml there. Every
daemon of the home reads them, whoever started it: a hook (enqueue
--ensure-daemon), a service or a person. A flag wins over the environment,
which wins over the file, which wins over the default.

Keys:
  endpoint       ingest URL (http, https, otlp+http, otlp+https or file:); env DIFFLORE_CLOUD_URL
  token          bearer token for the endpoint; env DIFFLORE_CLOUD_TOKEN
  batch          most events in one request, 1 to 10000 (default 100)
  redact         false sends payloads without replacing secrets; env DIFFLORE_REDACT
  redact_rules   more redaction rules: [[redact_rules]] tables of name and pattern
  redact_allow   values never replaced: a list of strings
  max_size       the outbox's largest size: 2MiB, 500MB or bytes, at least 1MiB (default 1GiB); flag --max-size
  max_age        evict pending events older than this: 30d, 12h, or off (default off); flag --max-age
  allow_insecure true lets the endpoint be plain http to a host that is not loopback (default false); flag --allow-insecure
  protocol       OTLP encoding: http/protobuf (default) or http/json
  trace_content  true puts tool arguments and results in spans, redacted (default false)
  signals        what an OTLP endpoint receives: a list of logs and traces (default both)
set and unset handle endpoint, token, batch, redact, max_size, max_age,
allow_insecure, protocol and trace_content; edit the file for redact_rules,
redact_allow and signals ('difflore config path' names it). A token is sent only to the endpoint named beside it (the
file's token to the file's endpoint) or to one of the same origin, never to
one a flag or another source names; white space around it is dropped.

The file is written whole, to a temporary file renamed over it, mode 0600;
its other lines and comments are kept. An endpoint no daemon would use,
plain http to a host that is not loopback, is refused unless allow_insecure
is true (set it first, if the network is trusted). A file that holds a token and that
group or others can read is refused by every command, as ssh refuses such a
key, until it is chmod 600 (or the token unset).

get prints the value in force: the environment's, else the file's, else the
default. list prints every key with its value in force and where it came
from: (default), (file) or (env: VARIABLE); the token only as
"token = (set, env)" or "(set, file)". get prints the token only with
--show-token.

Examples:
  difflore config set endpoint https://ingest.example.com/v1/events
  printf '%s\n' "$TOKEN" | difflore config set token -
  difflore config set max_size 2GiB
  difflore config list
`

// configKey is a key of config.toml as the config command knows it.
type configKey struct {
	name string
	// literal turns a value given on the command line into its TOML
	// text, checked; nil for a key that set does not handle.
	literal func(string) (string, error)
}

func configKeys() []configKey {
	return []configKey{
		{"endpoint", func(v string) (string, error) {
			if v == "" {
				return "", errors.New("empty; 'difflore config unset endpoint' removes it")
			}
			// Plain http off loopback depends on allow_insecure, which
			// editConfig checks with the file as it will be.
			if _, err := parseEndpoint(v, "", "", true); err != nil {
				return "", err // "endpoint …: …", with its hint
			}
			return tomlString(v), nil
		}},
		{"token", func(v string) (string, error) {
			if err := tokenProblem(v); err != nil {
				return "", err
			}
			return tomlString(v), nil
		}},
		{"batch", func(v string) (string, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return "", errors.New("want a number from 1 to 10000")
			}
			return strconv.Itoa(n), nil
		}},
		{"redact", boolLiteral},
		{"redact_rules", nil},
		{"redact_allow", nil},
		{"max_size", func(v string) (string, error) {
			if _, err := parseMaxSize(v); err != nil {
				return "", err
			}
			return tomlString(strings.TrimSpace(v)), nil
		}},
		{"max_age", func(v string) (string, error) {
			if _, err := parseAge(v); err != nil {
				return "", err
			}
			return tomlString(strings.TrimSpace(v)), nil
		}},
		{"allow_insecure", boolLiteral},
		{"protocol", protocolLiteral},
		{"trace_content", boolLiteral},
		{"signals", nil},
	}
}

// boolLiteral is a yes or no as a TOML boolean.
func boolLiteral(v string) (string, error) {
	switch strings.ToLower(v) {
	case "true", "on", "1", "yes":
		return "true", nil
	case "false", "off", "0", "no":
		return "false", nil
	}
	return "", errors.New("want true or false")
}

// findConfigKey is the key of that name, or a usage error listing the keys.
func findConfigKey(name string) (configKey, error) {
	var names []string
	for _, k := range configKeys() {
		if k.name == name {
			return k, nil
		}
		names = append(names, k.name)
	}
	return configKey{}, &exitError{code: 2, err: fmt.Errorf("unknown key %q", name),
		hint: "the keys are " + strings.Join(names, ", ")}
}

func cmdConfig(cfg config, args []string) error {
	if len(args) > 0 && usageAsked(cfg, args[:1], "", true) {
		// config -h lists the flags of its subcommands too.
		fl := newFlagSet(cfg, "config", configUsage)
		fl.Bool("show-token", false, "print the token, for 'get token'")
		fl.Usage()
		return nil
	}
	if len(args) == 0 {
		return &exitError{code: 2, err: errors.New("config needs a subcommand: get, set, unset, list or path"),
			hint: "run 'difflore config -h' for usage"}
	}
	sub, rest := args[0], args[1:]
	fl := newFlagSet(cfg, "config "+sub, configUsage)
	showToken := false
	if sub == "get" {
		fl.BoolVar(&showToken, "show-token", false, "print the token, for 'get token'")
	}
	if err := parseFlags(fl, rest); err != nil {
		return err
	}
	rest = fl.Args()
	want := map[string]int{"get": 1, "set": 2, "unset": 1, "list": 0, "path": 0}
	n, ok := want[sub]
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown config subcommand %q", sub),
			hint: "the subcommands are get, set, unset, list and path"}
	}
	if len(rest) != n {
		return usageError("config %s takes %d argument(s), got %d", sub, n, len(rest))
	}
	if sub == "path" {
		p, err := filepath.Abs(cfg.configPath())
		if err != nil {
			return err
		}
		fmt.Fprintln(cfg.stdout, p)
		return nil
	}
	if sub == "list" {
		return configList(cfg)
	}
	k, err := findConfigKey(rest[0])
	if err != nil {
		return err
	}
	switch sub {
	case "get":
		return configGet(cfg, k, showToken)
	case "set":
		return configSet(cfg, k, rest[1])
	default:
		return configUnset(cfg, k)
	}
}

// configValue is a value of the file as get prints it (plain, a line per
// item) and as list prints it (TOML, the token hidden).
type configValue struct{ plain, toml string }

// configValues are the values of the keys the file sets.
func configValues(fc fileConfig) map[string]configValue {
	vals := map[string]configValue{}
	if fc.Endpoint != nil {
		vals["endpoint"] = configValue{*fc.Endpoint, tomlString(*fc.Endpoint)}
	}
	if fc.Token != nil {
		vals["token"] = configValue{*fc.Token, "(set)"}
	}
	if fc.Batch != nil {
		vals["batch"] = configValue{strconv.Itoa(*fc.Batch), strconv.Itoa(*fc.Batch)}
	}
	for key, v := range map[string]*bool{"redact": fc.Redact, "allow_insecure": fc.AllowInsecure} {
		if v != nil {
			vals[key] = configValue{strconv.FormatBool(*v), strconv.FormatBool(*v)}
		}
	}
	if fc.RedactRules != nil {
		var lines, items []string
		for _, r := range fc.RedactRules {
			lines = append(lines, r.Name+"\t"+r.Pattern)
			items = append(items, fmt.Sprintf("{name = %s, pattern = %s}", tomlString(r.Name), tomlString(r.Pattern)))
		}
		vals["redact_rules"] = configValue{strings.Join(lines, "\n"), "[" + strings.Join(items, ", ") + "]"}
	}
	for key, v := range map[string]*limitText{"max_size": fc.MaxSize, "max_age": fc.MaxAge} {
		if v != nil {
			vals[key] = configValue{string(*v), tomlString(string(*v))}
		}
	}
	if fc.RedactAllow != nil {
		var items []string
		for _, a := range fc.RedactAllow {
			items = append(items, tomlString(a))
		}
		vals["redact_allow"] = configValue{strings.Join(fc.RedactAllow, "\n"), "[" + strings.Join(items, ", ") + "]"}
	}
	otlpValues(fc, vals)
	return vals
}

// shownSetting is a key's value in force, as config get and list show it,
// and where it came from: "default", "file" or "env: VARIABLE"; an empty
// source when nothing sets the key and it has no default.
type shownSetting struct {
	value  configValue
	source string
}

// configInForce gives every key its value in force: the environment's,
// else the file's, else the default. Flags are not seen here: they belong
// to one command's run.
func configInForce(cfg config, fc fileConfig) map[string]shownSetting {
	shown := map[string]shownSetting{
		"batch":        {configValue{strconv.Itoa(defaultBatch), strconv.Itoa(defaultBatch)}, fromDefault},
		"redact":       {configValue{"true", "true"}, fromDefault},
		"redact_rules": {configValue{"", "[]"}, fromDefault},
		"redact_allow": {configValue{"", "[]"}, fromDefault},
		"max_size":     {configValue{"1GiB", tomlString("1GiB")}, fromDefault},
		"max_age":      {configValue{"off", tomlString("off")}, fromDefault},
		// allow_insecure has no variable: a flag or the file sets it.
		"allow_insecure": {configValue{"false", "false"}, fromDefault},
	}
	otlpDefaults(shown)
	for k, v := range configValues(fc) {
		shown[k] = shownSetting{v, "file"}
	}
	if cfg.endpoint != "" {
		shown["endpoint"] = shownSetting{configValue{cfg.endpoint, tomlString(cfg.endpoint)}, "env: DIFFLORE_CLOUD_URL"}
	}
	if tok := strings.TrimSpace(cfg.token); tok != "" {
		shown["token"] = shownSetting{configValue{tok, "(set)"}, "env: DIFFLORE_CLOUD_TOKEN"}
	}
	if strings.TrimSpace(cfg.getenv(redactEnv)) != "" {
		on := strconv.FormatBool(!redactOptionsFromEnv(cfg.getenv).off)
		shown["redact"] = shownSetting{configValue{on, on}, "env: " + redactEnv}
	}
	return shown
}

// configList prints every key with its value in force, as TOML, and where
// it came from; the token is only said to be set, and by which source.
func configList(cfg config) error {
	fc, warnings, err := cfg.load()
	if err != nil {
		return err
	}
	settings{warnings: warnings}.printWarnings(cfg.stderr)
	shown := configInForce(cfg, fc)
	for _, k := range configKeys() {
		v, ok := shown[k.name]
		switch {
		case !ok:
			fmt.Fprintf(cfg.stdout, "%s = (not set)\n", k.name)
		case k.name == "token":
			fmt.Fprintf(cfg.stdout, "%s = (set, %s)\n", k.name, strings.SplitN(v.source, ":", 2)[0])
		default:
			fmt.Fprintf(cfg.stdout, "%s = %s (%s)\n", k.name, v.value.toml, v.source)
		}
	}
	return nil
}

// configGet prints the key's value in force (configInForce). The token is
// printed only when asked for by name with --show-token, as 'gh auth
// status --show-token' does: a plain 'get token' in a shared terminal or a
// screencast must not show it.
func configGet(cfg config, k configKey, showToken bool) error {
	if k.name == "token" && !showToken {
		return &exitError{code: 2, err: errors.New("the token is printed only with --show-token"),
			hint: "'difflore config list' shows whether it is set"}
	}
	fc, warnings, err := cfg.load()
	if err != nil {
		return err
	}
	settings{warnings: warnings}.printWarnings(cfg.stderr)
	v, ok := configInForce(cfg, fc)[k.name]
	if !ok {
		env, how := "DIFFLORE_CLOUD_URL", "difflore config set endpoint URL"
		if k.name == "token" {
			env, how = "DIFFLORE_CLOUD_TOKEN", `printf '%s\n' "$TOKEN" | difflore config set token -`
		}
		return &exitError{code: 1, err: fmt.Errorf("%s is not set: not in %s nor in %s, and it has no default", k.name, env, cfg.configPath()),
			hint: how}
	}
	if v.value.plain != "" {
		fmt.Fprintln(cfg.stdout, v.value.plain)
	}
	return nil
}

func configSet(cfg config, k configKey, value string) error {
	if k.literal == nil {
		return &exitError{code: 2, err: fmt.Errorf("config set does not handle %s", k.name),
			hint: "edit the file that 'difflore config path' names"}
	}
	if k.name == "token" && value == "-" {
		v, err := readToken(cfg)
		if err != nil {
			return err
		}
		value = v
	}
	if k.name == "token" {
		// White space around a token is what a file or a paste adds to
		// it, never part of it: the daemon trims it too.
		value = strings.TrimSpace(value)
	}
	lit, err := k.literal(value)
	if err != nil && strings.HasPrefix(err.Error(), k.name+" ") {
		return err // it names the key and the value already, and may carry a hint
	}
	if k.name == "token" && err != nil {
		// The token is not shown, so the error says what is wrong alone.
		return &exitError{code: 2, err: err, hint: `printf '%s\n' "$TOKEN" | difflore config set token -`}
	}
	if err != nil {
		return usageError("%s %q: %v", k.name, shownValue(k, value), err)
	}
	return editConfig(cfg, k.name, lit)
}

// shownValue is the value as an error message may show it: never a token.
// readToken reads the token 'config set token -' is given on standard input:
// a line typed at a terminal, or else all of the input, so that a second
// line is refused (tokenProblem) rather than silently dropped.
func readToken(cfg config) (string, error) {
	if isTerminal(cfg.stdin) {
		line, err := bufio.NewReader(cfg.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", usageError("read the token from standard input: %v", err)
		}
		return line, nil
	}
	b, err := io.ReadAll(io.LimitReader(cfg.stdin, maxTokenInput+1))
	if err != nil {
		return "", usageError("read the token from standard input: %v", err)
	}
	if len(b) > maxTokenInput {
		return "", usageError("the token on standard input is longer than %d KiB", maxTokenInput>>10)
	}
	return string(b), nil
}

// maxTokenInput bounds what 'config set token -' reads: a token is at most
// a few KiB.
const maxTokenInput = 64 << 10

func shownValue(k configKey, v string) string {
	if k.name == "token" {
		return "…"
	}
	return redactURL(v)
}

func configUnset(cfg config, k configKey) error {
	if k.literal == nil {
		return &exitError{code: 2, err: fmt.Errorf("config unset does not handle %s", k.name),
			hint: "edit the file that 'difflore config path' names"}
	}
	return editConfig(cfg, k.name, "")
}

// editConfig sets key to the TOML text lit in config.toml, or removes it
// when lit is empty, keeping every other line. The result must decode to
// what the file held with just that change, else the file is left alone:
// the line-wise edit cannot see into multi-line strings and arrays. Only
// 'unset token' may edit a file that the token check refuses: it is how
// the user repairs it.
func editConfig(cfg config, key, lit string) error {
	h, err := openHome(cfg.home, true)
	if err != nil {
		return err
	}
	path := h.path(configFileName)
	f, err := cfg.readConfig(path)
	if err != nil {
		return err
	}
	f.path = path
	fc, _, err := f.decode()
	if err != nil {
		return err
	}
	if !(key == "token" && lit == "") {
		if err := f.checkSecret(fc); err != nil {
			return err
		}
	} else if f.info != nil {
		if err := checkOwner(f.info); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	var want map[string]any
	if _, err := toml.Decode(string(f.data), &want); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if lit == "" {
		if _, ok := want[key]; !ok {
			return nil
		}
		delete(want, key)
	} else {
		var one map[string]any
		if _, err := toml.Decode(key+" = "+lit, &one); err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		want[key] = one[key]
	}
	text := editTOMLLine(string(f.data), key, lit)
	var got map[string]any
	if _, err := toml.Decode(text, &got); err != nil || !reflect.DeepEqual(got, want) {
		return &exitError{code: 1, err: fmt.Errorf("cannot change %s in %s line by line", key, path),
			hint: "edit the file by hand"}
	}
	if key == "endpoint" || key == "allow_insecure" {
		if err := checkEndpointUsable(key, text); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(path, []byte(text)); err != nil {
		return fmt.Errorf("write %s: %w", configFileName, err)
	}
	tellRunningDaemon(cfg, h)
	return nil
}

// checkEndpointUsable refuses a config.toml, as text would make it, whose
// endpoint no daemon would use: plain http to a host that is not loopback
// without allow_insecure. Every daemon would refuse to start with it, and
// a hook's daemon does so where nobody sees it, so the refusal comes now,
// from the key just set, with the hint that allows it.
func checkEndpointUsable(key, text string) error {
	var fc fileConfig
	if _, err := toml.Decode(text, &fc); err != nil || fc.Endpoint == nil {
		return nil // decode has spoken, or there is no endpoint to use
	}
	allow := fc.AllowInsecure != nil && *fc.AllowInsecure
	if _, err := parseEndpoint(*fc.Endpoint, "", "", allow); err == nil || allow {
		return nil
	}
	if _, err := parseEndpoint(*fc.Endpoint, "", "", true); err != nil {
		return nil // wrong for another reason, which the daemon reports
	}
	shown := redactURL(*fc.Endpoint)
	if key == "endpoint" {
		return &exitError{code: 2, err: fmt.Errorf("endpoint %q is plain http to a host that is not loopback", shown),
			hint: "use https, or, if the network is trusted, run 'difflore config set allow_insecure true' first"}
	}
	return &exitError{code: 2, err: fmt.Errorf("endpoint %q in %s is plain http to a host that is not loopback: no daemon would use it without allow_insecure", shown, configFileName),
		hint: "set an https endpoint first: difflore config set endpoint https://…"}
}

// tellRunningDaemon says, when a daemon of h runs, that it goes on with the
// settings it read until it reads config.toml again: a change made with
// 'config set' is not the one 'status' shows or the daemon uses until then.
func tellRunningDaemon(cfg config, h home) {
	if held, err := lockHeld(h); err != nil || !held {
		return
	}
	how := fmt.Sprintf("send it SIGHUP (kill -HUP $(head -1 %s)) or restart it", h.path(pidFileName))
	if runtime.GOOS == "windows" {
		how = "restart it (a service: 'sc stop difflore', then 'sc start difflore')"
	}
	fmt.Fprintf(cfg.stderr, "difflore: the running daemon keeps the settings it read: %s to use this one\n", how)
}

// editTOMLLine replaces the line that sets key at the top level of the TOML
// text with 'key = lit', or removes it when lit is empty. A key not there is
// added after the last top-level line, before the first table and the
// comments just above it, which are that table's.
func editTOMLLine(text, key, lit string) string {
	nl := "\n"
	if strings.Contains(text, "\r\n") {
		nl = "\r\n"
	}
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	keyRE := regexp.MustCompile(`^\s*(` + regexp.QuoteMeta(key) + `|"` + regexp.QuoteMeta(key) + `"|'` + regexp.QuoteMeta(key) + `')\s*=`)
	newLine := key + " = " + lit + nl
	end := len(lines) // the first line of the first table
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "[") {
			end = i
			break
		}
		if keyRE.MatchString(l) {
			if lit == "" {
				return strings.Join(append(lines[:i:i], lines[i+1:]...), "")
			}
			lines[i] = newLine
			return strings.Join(lines, "")
		}
	}
	if lit == "" {
		return text
	}
	at := end
	for at > 0 && at < len(lines) {
		t := strings.TrimSpace(lines[at-1])
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		at--
	}
	if at > 0 && !strings.HasSuffix(lines[at-1], "\n") {
		lines[at-1] += nl
	}
	out := append(lines[:at:at], newLine)
	return strings.Join(append(out, lines[at:]...), "")
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
