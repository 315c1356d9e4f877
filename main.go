package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	// The daemon's process runs on one P, one thread running Go code
	// at a time, unless GOMAXPROCS says otherwise. The daemon is one loop
	// (claim, send, settle) that never has two things to compute at once, and
	// drains as fast on one P; but with two, an idle daemon waiting in its
	// wake listener's system call made the Go runtime's monitor thread spin
	// a while after going idle, where one P let it sleep (BENCHMARKS.md).
	if len(os.Args) > 1 && os.Args[1] == "run" && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	os.Exit(report(currentStderr(), err))
}

// report prints err, unless it is silent, and returns the exit code it
// carries.
func report(stderr io.Writer, err error) int {
	if err != nil && !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "difflore: %s\n", printableLines(err.Error()))
	}
	return exitCode(err)
}

// exitError carries the exit code an error should end the program with, and
// optionally a hint line.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string {
	if e.hint != "" {
		return e.err.Error() + "\nhint: " + e.hint
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// errSilent ends the program with its exit code and prints nothing more:
// the command has already said what it had to.
var errSilent = errors.New("silent")

// usageError is bad usage or bad input: exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// withCode gives err an exit code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

// config is what every command learns from the environment.
type config struct {
	home     string
	endpoint string
	token    string
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	waits    waits
	// salvagePause is a test's pause point in a salvage (healOpts.pause);
	// nil for users.
	salvagePause func(ctx context.Context, step string)
	// readConfig reads config.toml (readConfigFile). Commands read it only
	// when they use a setting (config.load); a test counts the reads here.
	readConfig func(path string) (configFile, error)
	// pause, when set, is called at the named steps where a test aims a
	// race or a kill (pauseAt); nil for users.
	pause func(step string)
	// settingsPause, when set, is called at the named steps of an edit of
	// an agent's settings file (editSettings): a test makes the agent save
	// its settings there.
	settingsPause func(step string)
}

// pauseAt calls cfg.pause at step, if a test set one: the test then acts
// (runs stop, takes the lock, kills the process) at exactly that point of
// start-up, delivery or salvage, and knows that it did. The steps are
// named where they are taken; pauseSend and the others below are the
// delivery's.
func (cfg config) pauseAt(step string) {
	if cfg.pause != nil {
		cfg.pause(step)
	}
}

// The named steps a test may pause the daemon at (config.pauseAt).
const (
	pauseSend   = "send"   // a batch is claimed and about to be sent
	pauseClaim  = "claim"  // a drain pass is about to claim a batch
	pauseSettle = "settle" // the endpoint answered; the batch is not settled yet
)

// waits are the long waits of the commands: fixed for users, and set
// shorter by tests that would otherwise sit them out.
type waits struct {
	settle        time.Duration // how long run and stop look again for a lock holder to show itself (settleLoop)
	shutdownGrace time.Duration // what a stopping daemon still gives the request in flight
	stdinWait     time.Duration // how long enqueue waits for standard input after bad usage
	firstPass     time.Duration // how long a detached daemon's first delivery pass may hold back its ready report
	healGate      time.Duration // how long a salvage waits for the connections to the outbox to close
	lockBusy      time.Duration // how long the daemon's first look at a locked outbox waits before it says it waits (startBusy)
	lockRetry     time.Duration // the first of its backoffs between looks at a locked outbox, which double to 30 s
}

// defaultWaits are the waits of difflore as users run it.
func defaultWaits() waits {
	return waits{settle: settleTime, shutdownGrace: shutdownGrace, stdinWait: usageStdinWait, firstPass: firstPassWait, healGate: healGateWait,
		lockBusy: startBusy, lockRetry: time.Second}
}

func loadConfig(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) config {
	dir := getenv("DIFFLORE_HOME")
	if dir == "" {
		if h, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(h, ".difflore")
		}
	}
	return config{
		home:     dir,
		endpoint: getenv("DIFFLORE_CLOUD_URL"),
		token:    getenv("DIFFLORE_CLOUD_TOKEN"),
		stdin:    stdin,
		stdout:   stdout,
		stderr:   stderr,
		getenv:   getenv,
		waits:    defaultWaits(),

		readConfig: readConfigFile,
	}
}

// commandSpec is one of difflore's commands. The table of them (commands)
// drives dispatch, the list in the usage, 'help CMD' and completion, so
// that these cannot drift apart.
type commandSpec struct {
	name    string
	summary string // the line in the usage's list of commands
	run     func(ctx context.Context, cfg config, args []string) error
	words   []string // what completion offers after the name: flags, subcommands, arguments
}

// commands is the table of commands, in the order the usage lists them.
// TestCompletionFlags checks each one's words against its -h.
func commands() []commandSpec {
	noCtx := func(f func(config, []string) error) func(context.Context, config, []string) error {
		return func(_ context.Context, cfg config, args []string) error { return f(cfg, args) }
	}
	return []commandSpec{
		{"enqueue", "queue one event (the hook fast path)", cmdEnqueue,
			[]string{"--kind", "--id", "--ensure-daemon", "--strict"}},
		{"run", "run the delivery daemon (--detach to start it in the background)", cmdRun,
			[]string{"--detach", "--takeover", "--endpoint", "--batch", "--tick", "--allow-insecure", "--log-level", "--max-size", "--max-age"}},
		{"stop", "stop the daemon of this data home", cmdStop, []string{"--grace"}},
		{"status", "show the daemon and the outbox", cmdStatus, []string{"--json", "--metrics"}},
		{"outbox", "inspect the queue: list, retry and purge dead letters", cmdOutbox,
			[]string{"list", "show", "retry", "purge", "--json", "--limit", "--all", "--dead", "--yes", "--sink"}},
		{"drain", "deliver everything now, in the foreground", cmdDrain,
			[]string{"--endpoint", "--sink", "--batch", "--allow-insecure", "--json"}},
		{"redact", "print a payload as it would be sent, secrets replaced", noCtx(cmdRedact), []string{}},
		{"doctor", "check the hooks, the endpoint, the config, the disk, the outbox, the daemon and the clock", cmdDoctor,
			[]string{"--check-time"}},
		{"logs", "print or follow the daemon's log", cmdLogs, []string{"-f", "-n"}},
		{"hooks", "wire an agent's hooks to difflore: install, uninstall, status, print", noCtx(cmdHooks),
			append([]string{"print", "install", "uninstall", "status", "--autostart", "--command", "--project", "--dry-run", "--trust", "--all"}, agentList()...)},
		{"service", "run the daemon as a systemd, launchd or Windows service: print, install, uninstall", noCtx(cmdService),
			[]string{"print", "install", "uninstall", "systemd", "launchd", "windows"}},
		{"config", "show and edit the settings in config.toml: get, set, unset, list, path", noCtx(cmdConfig),
			[]string{"get", "set", "unset", "list", "path", "--show-token", "endpoint", "token", "batch", "redact", "redact_rules", "redact_allow", "max_size", "max_age", "allow_insecure", "protocol", "trace_content", "signals"}},
		{"completion", "print a shell completion script", noCtx(cmdCompletion), []string{"bash", "zsh", "fish", "powershell"}},
		{"version", "print the version", noCtx(cmdVersion), []string{}},
	}
}

// findCommand is the command of that name, if there is one.
func findCommand(name string) (commandSpec, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return commandSpec{}, false
}

const (
	usageHead = `difflore keeps agent hooks fast and lossless: hooks enqueue events into a
local SQLite outbox and a background daemon delivers them to an HTTP endpoint.

Usage:
  difflore <command> [flags]

Commands:
`
	usageTail = `
Environment (over the settings in config.toml, see 'difflore config -h'):
  DIFFLORE_HOME          data home (default ~/.difflore)
  DIFFLORE_CLOUD_URL     ingest endpoint (http(s)://, otlp+http(s):// or file:)
  DIFFLORE_CLOUD_TOKEN   bearer token for the endpoint
  DIFFLORE_AUTOSTART     set to 1: enqueue starts the daemon when none runs
  DIFFLORE_REDACT        set to 0: send payloads without replacing secrets
  NO_COLOR               set: no colours in status

Run 'difflore <command> -h' for a command's flags.
`
)

// mainUsage is the usage of difflore as a whole, its list of commands taken
// from the table.
func mainUsage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString(usageTail)
	return b.String()
}

// run is the whole program but for the exit: main only maps its error to a
// message and an exit code, so deferred cleanup always runs. The
// environment comes in through getenv, so that a test can give each run its
// own.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	return runConfig(ctx, loadConfig(getenv, stdin, stdout, stderr), args)
}

// runConfig runs the command args names with cfg. 'help CMD' is 'CMD -h'.
func runConfig(ctx context.Context, cfg config, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(cfg.stderr, mainUsage())
		return withCode(2, errSilent)
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		fmt.Fprint(cfg.stdout, mainUsage())
		return nil
	case "--version", "-version":
		// -v is left free: to many it means verbose.
		name = "version"
	case "help":
		switch {
		case len(rest) == 0 || len(rest) == 1 && slices.Contains([]string{"-h", "-help", "--help"}, rest[0]):
			fmt.Fprint(cfg.stdout, mainUsage())
			return nil
		case len(rest) > 1:
			return &exitError{code: 2, err: fmt.Errorf("help takes one command, got %d", len(rest)), hint: "run 'difflore -h' for the list of commands"}
		}
		name, rest = rest[0], []string{"-h"}
	}
	if c, ok := findCommand(name); ok {
		return c.run(ctx, cfg, rest)
	}
	hint := "run 'difflore -h' for the list of commands"
	if near := nearestCommand(name); near != "" {
		hint = fmt.Sprintf("did you mean 'difflore %s'? (%s)", near, hint)
	}
	return &exitError{code: 2, err: fmt.Errorf("unknown command %q", name), hint: hint}
}

// nearestCommand is the command whose name is within two edits of name
// (a typo: a letter left out, doubled, swapped or wrong), or "".
func nearestCommand(name string) string {
	best, bestDist := "", 3
	for _, c := range commands() {
		if d := editDistance(strings.ToLower(name), c.name); d < bestDist {
			best, bestDist = c.name, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of two neighbours.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// newFlagSet returns a flag set whose -h prints usage, the flags and an
// example to stdout.
func newFlagSet(cfg config, name, usage string) *flag.FlagSet {
	if s, ok := findSubcommand(name); ok {
		// A subcommand's -h is its own, not its parent's whole help.
		usage = s.usage(usage)
	}
	fs := flag.NewFlagSet("difflore "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(cfg.stdout, strings.TrimLeft(usage, "\n"))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n == 0 {
			return
		}
		fmt.Fprintln(cfg.stdout, "\nFlags:")
		printFlags(cfg.stdout, fs)
	}
	return fs
}

// printFlags lists the flags of fs as the usage lines write them: two
// dashes before a long name, one before a letter (the flag package takes
// both), each with its argument's name, what it does, and its default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		// The back-quoted name the argument is shown by stays in the text
		// as a plain word; beside the flag it is said already.
		usage = strings.Replace(usage, " ("+arg+")", "", 1)
		usage = strings.Replace(usage, "("+arg+", ", "(", 1)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if arg != "" {
			line += " " + arg
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "[]" {
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// parseFlags parses args, flags and arguments in any order (enqueue {}
// --kind x as well as enqueue --kind x {}), with -- ending the flags,
// turning -h into a clean exit and any other flag error into exit code 2.
// fs.Args() are then the arguments, in order.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package calls Usage on every parse error, -h included, and
	// usage is for -h alone, printed once: below.
	usage := fs.Usage
	fs.Usage = func() {}
	positional, err := parseInterleaved(fs, args)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return errHelp
		}
		return &exitError{code: 2, err: err, hint: fmt.Sprintf("run '%s -h' for usage", fs.Name())}
	}
	// A last parse of "--" and the arguments alone makes them fs.Args().
	return fs.Parse(append([]string{"--"}, positional...))
}

// parseInterleaved parses the flags among args and returns the arguments
// that are not flags. The flag package stops at the first argument that is
// not a flag; parseInterleaved sets it aside and parses on from the next,
// until the end or a -- that is not a flag's value.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 || endedByDashDash(fs, args[:len(args)-len(rest)]) {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// endedByDashDash reports whether the flag package, having consumed parsed,
// stopped at a "--" that ends the flags rather than one that is the value
// of the flag before it ('--kind --').
func endedByDashDash(fs *flag.FlagSet, parsed []string) bool {
	n := len(parsed)
	if n == 0 || parsed[n-1] != "--" {
		return false
	}
	if n == 1 {
		return true
	}
	prev := parsed[n-2]
	name := strings.TrimPrefix(strings.TrimPrefix(prev, "-"), "-")
	if !strings.HasPrefix(prev, "-") || strings.Contains(name, "=") {
		return true
	}
	f := fs.Lookup(name)
	if f == nil {
		return true
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// usageAsked prints usage to stdout and reports true when args ask for it:
// -h, -help or --help first, or, where the command takes a word first
// (helpWord), "help". It serves the commands whose first argument is a
// word, not a flag, and that so cannot leave -h to a flag set.
func usageAsked(cfg config, args []string, usage string, helpWord bool) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "-h", "-help", "--help":
	case "help":
		if !helpWord {
			return false
		}
	default:
		return false
	}
	fmt.Fprint(cfg.stdout, strings.TrimLeft(usage, "\n"))
	return true
}

// durationFlag is a flag.Value for a duration that says, for a number
// without a unit ('stop --grace 5'), which unit it wants, instead of the
// flag package's bare "parse error".
// String is the value as the user wrote it, for messages about it, or the
// default's.
type durationFlag struct {
	d    *time.Duration
	text string
}

// newDurationFlag defines the duration flag name on fs, as fs.Duration
// does.
func newDurationFlag(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	d := value
	fs.Var(&durationFlag{d: &d}, name, usage)
	return &d
}

func (f *durationFlag) String() string {
	switch {
	case f == nil || f.d == nil:
		return ""
	case f.text != "":
		return f.text
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err == nil {
		*f.d, f.text = d, s
		return nil
	}
	if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
		return fmt.Errorf("a duration needs a unit: %ss for seconds, %sm for minutes", s, s)
	}
	return errors.New("want a duration such as 500ms, 10s, 5m or 1h")
}

// errHelp means -h was given and usage printed: the command is done.
var errHelp = &exitError{code: 0, err: errSilent}

func cmdVersion(cfg config, args []string) error {
	fs := newFlagSet(cfg, "version", "Usage: difflore version\n\nPrints the version of difflore.\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("version takes no arguments")
	}
	fmt.Fprintf(cfg.stdout, "difflore %s\n", buildVersion())
	return nil
}

// buildVersion is the module version when installed with 'go install
// …@version', else the VCS revision, else "devel".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

// plural is n and word, with an s where n is not one: "1 event", "2 events".
func plural[N ~int | ~int64](n N, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// humanTimeLayout is how difflore shows a time to a person: RFC 3339 in
// UTC, to the millisecond, as wide for every time.
const humanTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// humanTime is t as difflore shows it to a person.
func humanTime(t time.Time) string { return t.UTC().Format(humanTimeLayout) }

// humanTimeString is an RFC 3339 time stored as text, as difflore shows it
// to a person; text that is not such a time is left as it is.
func humanTimeString(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return humanTime(t)
}
