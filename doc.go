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
//	difflore enqueue [--kind KIND] [--id ID] [--ensure-daemon] [JSON]
//	difflore run [--detach] [--endpoint URL] [--batch N] [--tick DUR]
//	difflore stop [--grace DUR]
//	difflore status [--json]
//	difflore outbox [list | retry (--all | ID...) | purge --dead --yes]
//	difflore drain [--endpoint URL] [--json]
//	difflore logs [-f] [-n N]
//	difflore hooks print claude|codex|cursor|gemini
//	difflore service print systemd|launchd|windows
//	difflore completion bash|zsh|fish
//	difflore version
//
// enqueue takes the payload as its argument, or on standard input when
// there is none: one JSON value of at most 1 MiB, or it exits 2 and writes
// nothing. When the outbox cannot be written within about two seconds, the
// event is saved in the spill folder instead, and enqueue still exits 0.
//
// run holds an exclusive lock on daemon.pid.lock for its whole life: the
// lock, not the PID, proves that a daemon runs, and a second daemon for the
// same data home exits 1 ("already running (pid N)"). stop signals a process
// only when the lock is held and the process is the one daemon.pid
// describes (same PID, start time and executable name), and only when
// daemon.pid records the lock file of this home, so that a PID file copied
// or moved from another home (with cp -a, say) is never acted on; a PID file
// written by an older difflore records none and is never signalled on.
// status exits 0 when a daemon runs, 1 for a stale PID file, 3 when none
// runs and 4 when the state is unknown: the lock is held by a process the
// PID file does not describe, or the data home cannot be read.
//
// Endpoints: http:// and https:// (difflore's JSON batches), otlp+http:// and
// otlp+https:// (OTLP/HTTP logs), and file: (JSON lines, synced). Plain http
// to a host that is not loopback needs --allow-insecure.
//
// Environment:
//
//	DIFFLORE_HOME          data home (default ~/.difflore)
//	DIFFLORE_CLOUD_URL     the endpoint
//	DIFFLORE_CLOUD_TOKEN   bearer token, never printed or logged
//	DIFFLORE_AUTOSTART=1   enqueue starts a daemon when none runs
//	NO_COLOR               no colours in status
//
// Every command has -h. Exit codes: 0 success, 1 failure, 2 bad usage or bad
// input.
package main
