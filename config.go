package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// configFileName is the settings file of a data home: every daemon of the
// home reads it, whoever started it (a hook, a service, a person), so that
// all of them deliver to the same place.
const configFileName = "config.toml"

// maxConfigFile bounds what is read of config.toml: a settings file is a
// few lines.
const maxConfigFile = 1 << 20

// fileConfig is config.toml as decoded. A pointer is nil when the file does
// not set the key, so that the default, not a zero value, applies.
type fileConfig struct {
	Endpoint    *string    `toml:"endpoint"`
	Token       *string    `toml:"token"`
	Batch       *int       `toml:"batch"`
	Redact      *bool      `toml:"redact"`
	RedactRules []fileRule `toml:"redact_rules"`
	RedactAllow []string   `toml:"redact_allow"`
	MaxSize     *limitText `toml:"max_size"`
	MaxAge      *limitText `toml:"max_age"`
	// AllowInsecure lets an endpoint be plain http to a host that is
	// not loopback: the network between is trusted.
	AllowInsecure *bool `toml:"allow_insecure"`
	// The OTLP settings: otlpconfig.go. A [[sink]] table that does not
	// set one takes these.
	Protocol     *string  `toml:"protocol"`
	TraceContent *bool    `toml:"trace_content"`
	Signals      []string `toml:"signals"`
	// Sinks are the [[sink]] tables: destinations beside the top-level
	// endpoint (sinks.go).
	Sinks []fileSinkTable `toml:"sink"`
}

// limitText is a limit as config.toml gives it: a string, as the run flag
// takes it ("2MiB", "30d"), or a whole number (a byte count, or 0 for no
// max_age).
type limitText string

// UnmarshalTOML takes a string or an integer.
func (t *limitText) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*t = limitText(v)
	case int64:
		*t = limitText(strconv.FormatInt(v, 10))
	default:
		return fmt.Errorf("want a string, as \"2MiB\" or \"30d\", got %v", v)
	}
	return nil
}

// fileRule is a [[redact_rules]] table: a customRule.
type fileRule struct {
	Name    string `toml:"name"`
	Pattern string `toml:"pattern"`
}

// settings are what the commands that deliver use, each taken from the
// first of flag, environment, config.toml and default that sets it.
type settings struct {
	endpoint       string
	endpointSource string // flag, env, config or none
	token          string
	tokenSource    string // env or config, when there is a token
	// tokenFor is the endpoint the token was set for: the one its own
	// source names, else the one a source below it names; empty when
	// none does, and then the token goes with any endpoint (bindToken).
	tokenFor string
	batch    int
	redact   redactOptions
	limits   limits
	// allowInsecure is allow_insecure of config.toml; a command's flag
	// --allow-insecure, when given, wins over it.
	allowInsecure bool
	otlp          otlpOptions
	warnings      []string // about the file: unknown keys
	// sinkTables are the [[sink]] tables, checked (sinkSpecs).
	sinkTables []fileSinkTable
}

// The sources of a setting, as status shows them.
const (
	fromFlag    = "flag"
	fromEnv     = "env"
	fromConfig  = "config"
	fromNone    = "none"
	fromDefault = "default"
)

// configFile is config.toml as read: its bytes and what the file system
// says about it. A missing file reads as empty.
type configFile struct {
	path string
	data []byte
	info fs.FileInfo // nil when the file does not exist
}

// readConfigFile reads config.toml without following a symlink or waiting
// on a named pipe planted under its name (openRegular), as every file of
// the data home is read.
func readConfigFile(path string) (configFile, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return configFile{path: path}, nil
	}
	if err != nil {
		return configFile{}, fmt.Errorf("read %s: %w", configFileName, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return configFile{}, fmt.Errorf("read %s: %w", configFileName, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return configFile{}, fmt.Errorf("read %s: %w", configFileName, err)
	}
	if len(data) > maxConfigFile {
		return configFile{}, fmt.Errorf("%s is larger than %d MiB; refusing it", path, maxConfigFile>>20)
	}
	return configFile{path: path, data: data, info: fi}, nil
}

// configPath is where config.toml of the data home is, whether or not it
// exists.
func (cfg config) configPath() string {
	return filepath.Join(cfg.home, configFileName)
}

// decode decodes the file and lists the keys difflore does not know: a
// typo, or a key of a newer difflore, is worth a warning, not a daemon that
// refuses to start.
func (f configFile) decode() (fileConfig, []string, error) {
	var fc fileConfig
	md, err := toml.Decode(string(f.data), &fc)
	if err != nil {
		return fileConfig{}, nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", f.path, err),
			hint: "fix it, or see 'difflore config -h'"}
	}
	var warnings []string
	for _, k := range md.Undecoded() {
		warnings = append(warnings, fmt.Sprintf("%s: unknown key %q, ignored", f.path, k.String()))
	}
	if fc.Batch != nil && (*fc.Batch < 1 || *fc.Batch > 10000) {
		return fileConfig{}, nil, &exitError{code: 1, err: fmt.Errorf("%s: batch = %d: want 1 to 10000", f.path, *fc.Batch)}
	}
	if err := checkSinkTables(fc.Sinks, fc.Endpoint != nil && *fc.Endpoint != ""); err != nil {
		return fileConfig{}, nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", f.path, err),
			hint: "fix it, or see 'difflore config -h'"}
	}
	if _, err := fc.limits(); err != nil {
		return fileConfig{}, nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", f.path, err),
			hint: "fix it with 'difflore config set', or see 'difflore config -h'"}
	}
	return fc, warnings, nil
}

// limits are the limits the file sets, over the defaults.
func (fc fileConfig) limits() (limits, error) {
	l := defaultLimits()
	if fc.MaxSize != nil {
		n, err := parseMaxSize(string(*fc.MaxSize))
		if err != nil {
			return l, fmt.Errorf("max_size = %q: %w", *fc.MaxSize, err)
		}
		l.maxSize, l.sizeFrom = n, fromConfig
	}
	if fc.MaxAge != nil {
		d, err := parseAge(string(*fc.MaxAge))
		if err != nil {
			return l, fmt.Errorf("max_age = %q: %w", *fc.MaxAge, err)
		}
		l.maxAge, l.ageFrom = d, fromConfig
	}
	return l, nil
}

// checkSecret refuses a file that holds a token and that another user may
// read, as ssh refuses such a private key: the token must not stay exposed
// unnoticed. A file of another user is refused whatever it holds.
func (f configFile) checkSecret(fc fileConfig) error {
	if f.info == nil {
		return nil
	}
	if err := checkOwner(f.info); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if fc.Token == nil && !slices.ContainsFunc(fc.Sinks, func(t fileSinkTable) bool { return t.Token != nil }) {
		return nil
	}
	if err := checkSecretMode(f.info); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%s holds a token and %w", f.path, err),
			hint: fmt.Sprintf("chmod 600 %s (and change the token if others could have read it)", f.path)}
	}
	return nil
}

// load reads and checks config.toml: what every command that uses a
// setting calls, and only those, so that enqueue, on the hook's fast path,
// never reads the file.
func (cfg config) load() (fileConfig, []string, error) {
	if cfg.home == "" {
		return fileConfig{}, nil, nil
	}
	f, err := cfg.readConfig(cfg.configPath())
	if err != nil {
		return fileConfig{}, nil, err
	}
	fc, warnings, err := f.decode()
	if err != nil {
		return fileConfig{}, nil, err
	}
	if err := f.checkSecret(fc); err != nil {
		return fileConfig{}, nil, err
	}
	return fc, warnings, nil
}

// settings are the settings from the environment, then config.toml, then
// the defaults; a command applies its flags on top (withFlags).
func (cfg config) settings() (settings, error) {
	fc, warnings, err := cfg.load()
	if err != nil {
		return settings{}, err
	}
	st := settings{endpointSource: fromNone, batch: defaultBatch, warnings: warnings}
	switch {
	case cfg.endpoint != "":
		st.endpoint, st.endpointSource = cfg.endpoint, fromEnv
	case fc.Endpoint != nil && *fc.Endpoint != "":
		st.endpoint, st.endpointSource = *fc.Endpoint, fromConfig
	}
	if err := st.takeToken(cfg, fc); err != nil {
		return settings{}, err
	}
	st.bindToken()
	if fc.Batch != nil {
		st.batch = *fc.Batch
	}
	if fc.Redact != nil {
		st.redact.off = !*fc.Redact
	}
	for _, r := range fc.RedactRules {
		st.redact.rules = append(st.redact.rules, customRule{name: r.Name, pattern: r.Pattern})
	}
	st.redact.allow = fc.RedactAllow
	st.allowInsecure = fc.AllowInsecure != nil && *fc.AllowInsecure
	st.sinkTables = fc.Sinks
	if strings.TrimSpace(cfg.getenv(redactEnv)) != "" {
		st.redact.off = redactOptionsFromEnv(cfg.getenv).off
	}
	if st.otlp, err = fc.otlpOptions(); err != nil {
		return settings{}, fmt.Errorf("%s: %w", cfg.configPath(), err)
	}
	st.limits, err = fc.limits() // checked by load
	return st, err
}

// takeToken takes the token of the first source that sets one, the
// environment then config.toml, and the endpoint it was set for. White
// space around it goes (a file written on Windows ends its lines in \r\n);
// a token with white space or a control character inside it is refused,
// since no request could carry it.
func (st *settings) takeToken(cfg config, fc fileConfig) error {
	fileEndpoint := ""
	if fc.Endpoint != nil {
		fileEndpoint = *fc.Endpoint
	}
	if tok := strings.TrimSpace(cfg.token); tok != "" {
		if err := tokenProblem(tok); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("DIFFLORE_CLOUD_TOKEN: %w", err), hint: "set it to the token alone"}
		}
		st.token, st.tokenSource, st.tokenFor = tok, fromEnv, cmp.Or(cfg.endpoint, fileEndpoint)
		return nil
	}
	if fc.Token == nil {
		return nil
	}
	if tok := strings.TrimSpace(*fc.Token); tok != "" {
		if err := tokenProblem(tok); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("%s: token: %w", cfg.configPath(), err),
				hint: `set it again: printf '%s\n' "$TOKEN" | difflore config set token -`}
		}
		st.token, st.tokenSource, st.tokenFor = tok, fromConfig, fileEndpoint
	}
	return nil
}

// tokenProblem says what keeps tok from being sent as a bearer token: it
// is empty, or it holds white space or a control character, which no
// HTTP header may carry (and which a token never holds: it is a line
// break or a tab pasted with it).
func tokenProblem(tok string) error {
	if tok == "" {
		return errors.New("the token is empty")
	}
	i := strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
	if i < 0 {
		return nil
	}
	what := "a control character"
	switch r, _ := utf8.DecodeRuneInString(tok[i:]); {
	case r == '\n' || r == '\r':
		what = "a line break"
	case r == '\t':
		what = "a tab"
	case unicode.IsSpace(r):
		what = "a space"
	}
	return fmt.Errorf("the token holds %s inside it; want the token alone", what)
}

// bindToken keeps the token from an endpoint it was not set for: a token
// goes only to the endpoint of its own source (or of a source below it,
// for a token in the environment with the endpoint in config.toml), or to
// one of the same origin, so that 'drain --endpoint URL' or a
// DIFFLORE_CLOUD_URL never hands another server the token of config.toml.
// A withheld token is a warning, with the hint that sends one.
func (st *settings) bindToken() {
	if st.token == "" || st.endpoint == "" || st.tokenFor == "" || sameOrigin(st.tokenFor, st.endpoint) {
		return
	}
	if strings.HasPrefix(st.endpoint, "file:") {
		st.token = "" // a file is sent no token: nothing to say
		return
	}
	where := configFileName
	if st.tokenSource == fromEnv {
		where = "DIFFLORE_CLOUD_TOKEN"
	}
	st.warnings = append(st.warnings, fmt.Sprintf("the token in %s is for %s, not %s: not sent\nhint: to send %[3]s a token, set DIFFLORE_CLOUD_URL and DIFFLORE_CLOUD_TOKEN for it",
		where, redactURL(st.tokenFor), redactURL(st.endpoint)))
	st.token = ""
}

// sameOrigin reports whether two endpoints reach the same server: the same
// scheme (otlp+https is https), host and port. A file: endpoint is the
// same only as itself.
func sameOrigin(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return a == b
	}
	scheme := func(u *url.URL) string { return strings.TrimPrefix(strings.ToLower(u.Scheme), "otlp+") }
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return map[string]string{"http": "80", "https": "443"}[scheme(u)]
	}
	sa := scheme(ua)
	if sa != "http" && sa != "https" {
		return a == b
	}
	return sa == scheme(ub) && strings.EqualFold(ua.Hostname(), ub.Hostname()) && port(ua) == port(ub)
}

// withEndpointFlag gives the endpoint a flag named, when it was given, and
// withholds the token if it was set for another (bindToken).
func (st *settings) withEndpointFlag(endpoint string, given bool) {
	if given {
		st.endpoint, st.endpointSource = endpoint, fromFlag
	}
	if st.endpoint == "" {
		st.endpointSource = fromNone
	}
	st.bindToken()
}

// printWarnings prints the warnings about config.toml, for a command that
// runs in the foreground.
func (st settings) printWarnings(w io.Writer) {
	for _, s := range st.warnings {
		fmt.Fprintf(w, "difflore: warning: %s\n", s)
	}
}

// flagGiven reports whether the command line set the flag.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}
