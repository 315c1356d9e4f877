// Difflore keeps AI-agent hooks fast and lossless.
//
// A hook runs 'difflore enqueue', which writes one event into a local SQLite
// outbox and returns in milliseconds. A background daemon, 'difflore run',
// drains the outbox in batches to an HTTP ingest endpoint (or a file, or an
// OpenTelemetry Collector), and an event leaves the outbox only once the
// endpoint has confirmed it: delivery is at least once, and a crash, a
// reused PID, a dead endpoint or a full disk loses nothing.
//
// Usage:
//
//	difflore enqueue [--kind KIND] [--id ID] [--ensure-daemon] [--strict] [--env NAMES | JSON]
//	difflore run [--detach] [--takeover] [--endpoint URL] [--batch N] [--tick DUR] [--max-size SIZE] [--max-age AGE] [--log-level LEVEL] [--allow-insecure]
//	difflore stop [--grace DUR]
//	difflore status [--json | --metrics]
//	difflore outbox [list [--json] [--limit N] | show ID | retry (--all | ID...) | purge --dead --yes] [--sink NAME]
//	difflore drain [--endpoint URL | --sink NAME] [--batch N] [--allow-insecure] [--json]
//	difflore redact [FILE|-]
//	difflore doctor [--check-time DUR]
//	difflore logs [-f] [-n N]
//	difflore hooks print|install|uninstall|status [--autostart] [--command PATH] [--project DIR] [--dry-run] [--trust] [--all] claude|codex|cursor|gemini|copilot|qwen|droid|cline|augment|windsurf|kiro|opencode|kilo|pi
//	difflore service print|install|uninstall systemd|launchd|windows
//	difflore config get [--show-token] KEY | set KEY VALUE | unset KEY | list | path
//	difflore completion bash|zsh|fish|powershell
//	difflore version
//
// Flags may come before or after a command's arguments, and -- ends them.
// 'difflore --version' is 'difflore version'.
//
// enqueue takes the payload as its argument, or on standard input when
// there is none: one JSON value of at most 1 MiB. With --env NAMES, for an
// agent that hands its hooks their context in environment variables and
// sends no session id (Kiro), it builds the payload from the environment
// and never reads standard input: {"session_id", "cwd", and each variable
// of the comma-separated NAMES that is set}, session_id a hash of the agent
// process that ran the hook and the folder (see the README). It is made for agents'
// hooks, which read exit code 2 as "block this action" and standard output
// as context: it never exits 2 and writes nothing to standard output. A
// payload that is not one JSON value (invalid UTF-8 and trailing data
// included), is empty or is over 1 MiB is kept as a dead letter: its bytes
// (up to 64 MiB; beyond, they are cut and the reason says so) and the
// reason. A dead letter is never sent in a broken form: 'outbox show ID'
// prints its bytes exactly, 'outbox retry ID' sends one that was only too
// large (alone, in a batch of its own) and refuses one that is not JSON.
// enqueue exits 1 only when nothing could be kept, and on bad usage (an
// unknown flag, two arguments, a bad --kind or --id), after keeping what
// standard input carried (unless it is a terminal) as a dead letter whose
// reason names the mistake. With --strict, for scripts, bad input exits 2
// and nothing is written. When the outbox cannot be written within about
// two seconds, the event, or the dead letter, is saved in the spill folder
// instead, and enqueue still exits 0.
//
// The daemon moves spilled events into the outbox in bounded rounds, a
// delivery between rounds, and status counts those still waiting as
// "spilled". A spilled payload gets enqueue's own checks, so one over 1 MiB
// or not JSON becomes a dead letter; a spill file larger than enqueue ever
// writes, or that is not a file, is renamed to .toobig or .notfile, unread,
// and recorded as a dead letter, and one that holds no event becomes a dead
// letter of its bytes. One that cannot be read now (an error opening or
// reading it) stays, is tried again, and is counted by status and doctor.
// Files an older release set aside as .bad are read again. Temporary files that killed
// enqueues left in the spill folder are removed when the daemon starts, once
// an hour old.
//
// doctor prints one line per check, ok, warn or FAIL: each agent's hooks and
// the program they run, the endpoint (an empty batch, {"events":[]}, must be
// answered 2xx, token included; a file: endpoint's folder must be
// writable), config.toml and who may read it, the free disk space against
// the outbox's 1 GiB limit and the 5 % of the disk it does not grow into, the
// outbox's identity (no WAL or file of another outbox in it) and integrity
// (SQLite's quick_check, cut after --check-time and then a warning), the
// PID file against the lock, and the clock (no queued event
// dated more than a minute ahead). It exits 1 when a check fails, and
// changes nothing.
//
// An outbox that SQLite reports corrupt or not a database, at the daemon's
// start or as it works, is moved aside as outbox.corrupt-<UTC time>.db (with
// its -wal and -shm), every row that can still be read is copied into a
// fresh outbox, and one event of kind difflore.gap, reason "corrupt", tells
// the endpoint how many events could not be read and between which creation
// times; the daemon goes on. A file that cannot be read at all is kept aside
// all the same, and the daemon starts empty. Hooks meanwhile spill. The
// outbox has an id, kept in outbox.id and inside outbox.db: a WAL or a
// database file of another outbox (a backup restored by halves) is never
// applied, but kept aside as outbox.foreign-<UTC time>.db, and handled as
// damage.
//
// hooks install merges difflore's hooks into an agent's user settings file
// (~/.claude/settings.json, ~/.codex/hooks.json, ~/.cursor/hooks.json,
// ~/.gemini/settings.json, ~/.copilot/hooks/difflore.json,
// ~/.qwen/settings.json, ~/.factory/hooks.json, ~/.augment/settings.json,
// ~/.codeium/windsurf/hooks.json; Cline's ~/.cline/hooks/ gets one
// executable per event; Kiro, whose hooks are per workspace, one
// .kiro/hooks/difflore-<event>.kiro.hook file per event, with --project
// DIR only; --project DIR for a project's; --all for every agent found on
// the machine, Kiro aside): every event the
// agent's hook reference lists and that a silent hook may observe runs
// 'difflore enqueue --kind <agent>.<event>', named by difflore's absolute
// path, with a 10-second timeout. Every other key and hook is kept, a second
// install changes nothing, a copy of the file as it was is kept in the data
// home (backups/, the last 5 per file), and --dry-run shows the change.
// uninstall gives the file back byte for byte as it was before install, or
// removes it when install made it; when it changed since, it removes only
// difflore's hooks;
// status says whether each agent is wired, and which of the wired events
// the installed release of the agent fires, and exits 1 when a hook runs a
// program that does not exist, or when Gemini CLI's hooksConfig.enabled,
// which install and uninstall never change, is false. Codex runs a hook
// only once the user trusts it, by its hash, in config.toml: install --trust
// codex appends that trust for difflore's hooks (and nothing else),
// uninstall removes it, and status counts the hooks Codex trusts and exits 1
// unless it trusts them all. The kind names the host that fired a hook,
// whatever file it came from (VS Code and Copilot CLI run Claude Code's
// hooks), and one firing that a host runs through two of difflore's hooks
// is stored once.
//
// OpenCode, Kilo and Pi load plugins instead of running hooks: for them
// hooks install writes one plugin file of difflore's
// (~/.config/opencode/plugins/difflore.js, ~/.config/kilo/plugins/difflore.js,
// ~/.pi/agent/extensions/difflore.ts) that hands each event to 'difflore
// enqueue' before its handler returns, and uninstall removes that file.
//
// run holds an exclusive lock on daemon.pid.lock for its whole life: the
// lock, not the PID, proves that a daemon runs, and a second daemon for the
// same data home exits 1 ("already running (pid N)"). run --takeover, what
// the service definitions run, instead asks the daemon that runs to stop,
// as stop does (through the same checks, never signalling a holder it
// cannot verify), waits for it to exit and takes the lock: a service never
// fights a daemon a hook started. Under systemd (NOTIFY_SOCKET set), run
// says READY=1 once it holds the lock and the outbox is open, and STOPPING=1
// when it stops. SIGHUP makes a daemon in the background (detached, or a
// service) read config.toml again and reopen daemon.log; a file that does
// not check out is refused with a log line and the settings in use are kept.
// A daemon in the foreground of a terminal stops on SIGHUP, and Windows has
// none: restart the service there. Started by the Windows Service Control
// Manager (service install windows), run answers Stop and Shutdown with
// the same graceful stop and logs to daemon.log. stop signals a process
// only when the lock is held and the process is the one daemon.pid
// describes (same PID, start time and executable name), and only when
// daemon.pid records the lock file of this home, so that a PID file copied
// or moved from another home (with cp -a, say) is never acted on; a PID file
// written by an older difflore records none and is never signalled on.
// status exits 0 when a daemon runs, 1 for a stale PID file, 3 when none
// runs and 4 when the state is unknown: the lock is held by a process the
// PID file does not describe, or the data home cannot be read.
//
// The daemon keeps the outbox under --max-size (1GiB by default; 2MiB,
// 500MB or a byte count), measured as SQLite's pages in use, and does not
// grow into the last 5 % of the disk (as df counts it) while the endpoint
// takes no events; with --max-age (30d, 12h), events older than that go
// too. Over a limit it evicts the oldest pending events first (dead letters
// have their own limit, a tenth of --max-size) and reports each eviction
// run as one event of kind difflore.gap, written with the eviction and
// delivered like any other: its payload gives how many events and payload
// bytes went, per kind, the creation times of the first and last, and the
// reason (max_size or max_age). status shows the size, the evictions so far
// and a warning from 80 % of --max-size. enqueue never evicts: the outbox
// may pass its limit by what hooks commit before the daemon next measures
// it (after each commit while idle, every second while delivering), and,
// while no daemon runs, until the next one starts.
//
// What leaves the machine has its secrets replaced with [REDACTED:<rule>]:
// provider keys and tokens, private-key blocks, JWTs, Authorization
// credentials, passwords in URLs, and values given to names that say
// secret. The outbox keeps payloads as the hooks gave them. redact prints a
// payload as it would be sent; status counts redactions per rule;
// DIFFLORE_REDACT=0 turns redaction off.
//
// An idle daemon sleeps until enqueue (or outbox retry) wakes it, right
// after its commit or spill file: through the named pipe "wake" in the data
// home on Linux, macOS and FreeBSD, and through the named event
// Local\difflore-wake-<hash of the data home> on Windows (and its Global\
// twin, which a daemon that runs as a service listens on too). Wake-ups sent
// while the daemon is busy count as one. --tick (1h by default, 10ms to 24h)
// is only the safety net: that often the daemon looks, woken or not,
// whether the outbox, the spill folder or the limits changed with no
// wake-up, and makes a drain pass if they did.
//
// Endpoints: http:// and https:// (difflore's JSON batches), otlp+http:// and
// otlp+https:// (OTLP/HTTP logs), and file: (JSON lines, synced). Plain http
// to a host that is not loopback needs --allow-insecure, or allow_insecure =
// true in config.toml; config set refuses such an endpoint without it.
//
// config.toml in the data home holds the settings: endpoint, token, batch,
// redact, redact_rules ([[redact_rules]] tables of name and pattern),
// redact_allow (values never replaced), max_size and max_age (as the run
// flags take them), allow_insecure. Every daemon of the home reads it,
// whether a hook (--ensure-daemon), a service or a person started it. A flag
// wins over the environment, which wins over the file, which wins over the
// default; status says where the endpoint and each limit came from. config set checks a
// value and replaces the key's line, keeping the user's other lines and
// comments; an unknown key is a warning. get prints the value in force, and
// list every key with its value in force and where it came from: (default),
// (file) or (env: VARIABLE); the token only as "token = (set, file)", and get
// prints the token only with --show-token. A file that holds a token and
// that group or others may read is refused by every command that reads it
// (chmod 600 it, or config unset token). enqueue never reads the file.
//
// Environment (over config.toml):
//
//	DIFFLORE_HOME          data home (default ~/.difflore)
//	DIFFLORE_CLOUD_URL     the endpoint
//	DIFFLORE_CLOUD_TOKEN   bearer token, never printed or logged
//	DIFFLORE_AUTOSTART=1   enqueue starts a daemon when none runs
//	DIFFLORE_REDACT=0      send payloads without replacing secrets
//	NO_COLOR               no colours in status
//
// Every command has -h. Exit codes: 0 success, 1 failure, 2 bad usage or bad
// input (never from enqueue, above).
package main
