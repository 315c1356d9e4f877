#!/usr/bin/env bash
# bench/run.sh measures difflore against its floors and peers (BENCHMARKS.md
# lists the targets): it builds difflore, bench/floor, bench/peer and
# bench/harness into bench/out, installs hyperfine and sqlite3 from Debian if
# they are missing, runs the Go benchmarks and the whole-process figures, and
# prints a table of figure / baseline / ratio / target / pass. Every figure
# is set beside a baseline measured in the same run, so the ratios hold on a
# busy machine where absolute numbers do not.
#
# Usage: bench/run.sh            everything (about 70 minutes: the idle figure waits one default --tick, an hour)
#        BENCH_QUICK=1 bench/run.sh   fewer runs, and no million-event drain
#
# Everything runs in temporary data homes (never ~/.difflore), servers
# listen on loopback only, and every step is bounded in time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/bench/out
mkdir -p "$out"
rows=$out/rows.tsv
: >"$rows"
quick=${BENCH_QUICK:-}

log() { printf '\n== %s\n' "$*" >&2; }

# Tools from Debian: hyperfine for the human-readable CLI timings, sqlite3
# for the command-line insert baseline and for queueing a million events.
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building"
(cd "$root" && go build -o "$out/difflore" . && go test -c -o "$out/difflore.test" .)
(cd "$root/bench/floor" && go build -o "$out/floor" .)
(cd "$root/bench/peer" && go build -o "$out/peer" .)
(cd "$root/bench/harness" && go build -o "$out/harness" .)
h=$out/harness
bin=$out/difflore

{
	echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Linux $(uname -r)"
	echo "go:      $(go version | cut -d' ' -f3-)"
	echo "tools:   $(hyperfine --version), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
} | tee "$out/machine.txt" >&2

# The Go benchmarks run from the test binary, in bench/out so that their
# temporary files are the only ones they make. The million-event outbox is
# built once per binary run, inside BenchmarkClaimLatency, and used again by
# BenchmarkStatus.
count=3; [ -n "$quick" ] && count=1
log "Go benchmarks (count $count)"
(cd "$out" && timeout 20m ./difflore.test -test.run '^$' -test.bench '^Benchmark(Enqueue|EnqueueAtLimit|ClaimAck|ClaimLatency|Status|Drain)$' \
	-test.count "$count" | tee gobench.txt >&2)
"$h" gobench "$out/gobench.txt" >>"$rows"

# goqite and difflore's one-at-a-time pipeline, alternating, so that both see
# the same machine; the medians of the rounds are compared.
rounds=5; [ -n "$quick" ] && rounds=2
log "enqueue → claim → ack beside goqite ($rounds rounds)"
: >"$out/eca.txt"; : >"$out/peer.txt"
for _ in $(seq "$rounds"); do
	(cd "$out" && timeout 5m ./difflore.test -test.run '^$' -test.bench '^BenchmarkEnqueueClaimAck$' -test.benchtime 3000x | tee -a eca.txt >&2)
	timeout 5m "$out/peer" -n 3000 | tee -a "$out/peer.txt" >&2
done
"$h" peer "$out/eca.txt" "$out/peer.txt" >>"$rows"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
payload='{"session_id":"6f1c2a9e","hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{"command":"go test ./..."}}'

log "hyperfine: enqueue, floor, sqlite3 insert, version (for reading; the table's ratio comes from the interleaved loop below)"
DIFFLORE_HOME=$tmp/a "$bin" enqueue "$payload"
DIFFLORE_HOME=$tmp/b "$bin" enqueue "$payload"
DIFFLORE_HOME=$tmp/c "$bin" enqueue "$payload"
printf "PRAGMA synchronous = NORMAL;\nINSERT INTO events (id, kind, payload, created_at, available_at) VALUES (lower(hex(randomblob(16))), 'event', CAST('%s' AS BLOB), 0, 0);\n" "$payload" >"$tmp/insert.sql"
runs=200; [ -n "$quick" ] && runs=50
DIFFLORE_HOME=$tmp/a timeout 10m hyperfine -N --warmup 20 --runs "$runs" --export-markdown "$out/hyperfine-enqueue.md" \
	-n 'difflore enqueue' "$bin enqueue '$payload'" \
	-n 'floor' "$out/floor $tmp/b/outbox.db '$payload'" \
	-n 'sqlite3 insert' "sqlite3 $tmp/c/outbox.db '.read $tmp/insert.sql'" \
	-n 'difflore version' "$bin version" >&2

log "enqueue against the floor program and the sqlite3 insert (interleaved)"
timeout 15m "$h" enqueue -difflore "$bin" -floor "$out/floor" -runs "$runs" >>"$rows"

n=200; [ -n "$quick" ] && n=50
log "enqueue → endpoint latency on an idle daemon ($n events)"
timeout 10m "$h" latency -difflore "$bin" -n "$n" >>"$rows"

log "idle daemon CPU over 30 s"
timeout 5m "$h" idlecpu -difflore "$bin" -secs 30 >>"$rows"

if [ -n "$quick" ]; then
	log "idle daemon wake-ups (voluntary context switches) over 5 min, --tick 5m, beside a bare Go process"
	timeout 10m "$h" idlewake -difflore "$bin" -secs 300 -tick 5m >>"$rows"
else
	log "idle daemon wake-ups (voluntary context switches) over 1 hour, one default --tick, beside a bare Go process"
	timeout 70m "$h" idlewake -difflore "$bin" >>"$rows"
fi

n=20; [ -n "$quick" ] && n=8
log "stop of an idle daemon ($n times)"
timeout 10m "$h" stop -difflore "$bin" -n "$n" >>"$rows"

log "status with an idle daemon"
timeout 10m "$h" status -difflore "$bin" -runs 100 >>"$rows"

if [ -z "$quick" ]; then
	log "draining a million events: daemon RSS and outbox size"
	timeout 20m "$h" drain1m -difflore "$bin" >>"$rows"
fi

log "results"
{
	cat "$out/machine.txt"
	echo
	{
		printf 'figure\tvalue\tbaseline (same run)\tratio\ttarget\tpass\n'
		cut -f2- "$rows"
	} | column -t -s $'\t'
} | tee "$out/table.txt"
if grep -q $'\tFAIL$' "$rows"; then
	exit 1
fi
