#!/usr/bin/env bash
# Issue 14's targets in one go, the way docs/benchmarks.md reports them: three rounds of
# W1 at the maximum, each followed by pgbench's one-message-per-transaction reference
# at 64 senders; three W1 runs at half the median maximum; three of W2 at 500 members;
# one W3 at 10,000 idle sockets. GOIM runs as its own process against a throwaway
# PostgreSQL cluster; the load generator is another process.
#
#   cargo build --release --locked && scripts/targets.sh
#
# Needs PostgreSQL's binaries (initdb, pg_ctl, psql, pgbench) and, for W3, python3 with
# `websockets` and `requests` (W3 is skipped without them, or on another PORT: the W3
# script expects 55432). Knobs: PGBIN (where initdb is), PORT (55432), MSGS (messages
# per W1 sender, 400), ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
GOIM=${GOIM:-$PWD/target/release/goim}
BENCH=${BENCH:-$PWD/target/release/goim-bench}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || dirname "$(readlink -f "$(command -v initdb)")")}
PORT=${PORT:-55432}
MSGS=${MSGS:-400}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d /tmp/goim-targets-XXXXXX)
chmod 755 "$WORK"
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ -x "$PGBIN/initdb" ] || { echo "no initdb in '$PGBIN'; set PGBIN to PostgreSQL's bin folder" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; fi
# goim-bench's pgbench reference looks for pgbench here.
export PG_BIN="$PGBIN"

cleanup() {
  if [ -n "${SERVER:-}" ]; then { kill -INT "$SERVER" && wait "$SERVER"; } 2>/dev/null || true; fi
  as_postgres "$PGBIN/pg_ctl -D $WORK/pg -m fast stop" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

as_postgres "$PGBIN/initdb -D $WORK/pg -U goim --auth=trust -E UTF8 --locale=C" >/dev/null
as_postgres "$PGBIN/pg_ctl -D $WORK/pg -l $WORK/pg.log -w -o '-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_connections=200' start" >/dev/null \
  || { cat "$WORK/pg.log" >&2; exit 1; }
"$PGBIN/psql" -qX -h 127.0.0.1 -p "$PORT" -U goim -d postgres -c "CREATE DATABASE goim_targets"

export DATABASE_URL=postgres://goim@127.0.0.1:$PORT/goim_targets
export GOIM_JWT_SECRET=targets-secret-targets-secret-targets-0123456789
# The load generator is not a hostile client: per-socket rate limits off, room for its
# in-flight window in each socket's queue.
export GOIM_WS_RATE_PER_SEC=1000000 GOIM_WS_RATE_BURST=1000000 GOIM_WS_OUTBOUND_QUEUE=4096
export GOIM_BIND=127.0.0.1:18090 GOIM_LOG=warn
URL=http://127.0.0.1:18090
"$GOIM" migrate >/dev/null

start_server() {
  "$GOIM" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    kill -0 "$SERVER" 2>/dev/null || break
    curl -sf "$URL/readyz" >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "the server did not become ready; its log:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop_server() { { kill -INT "$SERVER" && wait "$SERVER"; } 2>/dev/null || true; SERVER=; sleep 1; }
# Runs a load generator; its whole output on failure, else the line matching $1.
run() {
  local pattern=$1 out; shift
  out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; echo "failed: $*" >&2; exit 1; }
  grep -E "$pattern" <<<"$out" || { printf '%s\n' "$out" >&2; echo "no line matching '$pattern'" >&2; exit 1; }
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
load() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?"; }

echo "== W1 at the maximum, each round followed by pgbench's reference ($(date -u +%H:%M) UTC)"
: >"$WORK/w1" ; : >"$WORK/ratio"; : >"$WORK/cpu"
for round in $(seq 1 "$ROUNDS"); do
  start_server
  line=$(run 'msgs/s delivered' "$BENCH" chat --pairs 50 --messages "$MSGS" --in-flight 16 --url "$URL" --out "$WORK/chat.json")
  stop_server
  reference=$(run '^spread +pgbench' "$BENCH" writes --senders 64 --seconds 5 --runs 1 --out "$WORK/writes.json")
  rate=$(grep -o '[0-9]* msgs/s delivered' <<<"$line" | cut -d' ' -f1)
  cpu=$(grep -o 'cpu [0-9]* µs/msg' <<<"$line" | cut -d' ' -f2)
  pgbench=$(awk '{ print $4 }' <<<"$reference")
  ratio=$(awk -v a="$rate" -v b="$pgbench" 'BEGIN { printf "%.2f", a / b }')
  echo "round $round (load $(load)): W1 $rate msgs/s, $cpu µs/msg; pgbench $pgbench msgs/s; ×$ratio"
  echo "  ${line#*: }"
  echo "$rate" >>"$WORK/w1"; echo "$ratio" >>"$WORK/ratio"; echo "$cpu" >>"$WORK/cpu"
done
max=$(median <"$WORK/w1")
half=$((max / 2))

echo "== W1 at half the median maximum: --rate $half"
: >"$WORK/p99"
for round in $(seq 1 "$ROUNDS"); do
  start_server
  line=$(run 'msgs/s delivered' "$BENCH" chat --pairs 50 --messages "$MSGS" --in-flight 16 --rate "$half" --url "$URL" --out "$WORK/chat.json")
  stop_server
  echo "round $round (load $(load)): ${line#*: }"
  grep -o 'ack p50 [0-9.]* ms p99 [0-9.]*' <<<"$line" | awk '{ print $6 }' >>"$WORK/p99"
done

echo "== W2: 500 members, 4 senders"
: >"$WORK/w2"
for round in $(seq 1 "$ROUNDS"); do
  start_server
  line=$(run 'deliveries/s' "$BENCH" fanout --members 500 --senders 4 --messages 200 --in-flight 4 --url "$URL" --out "$WORK/fanout.json")
  stop_server
  echo "round $round (load $(load)): ${line#*: }"
  grep -o '[0-9]* deliveries/s' <<<"$line" | cut -d' ' -f1 >>"$WORK/w2"
done

w3="skipped (needs python3 with websockets and requests, and PORT 55432)"
if [ "$PORT" = 55432 ] && python3 -c 'import websockets, requests' 2>/dev/null; then
  echo "== W3: 10,000 idle sockets"
  line=$(PATH="$PGBIN:$PATH" GOIM_IDLE_PGDATA="$WORK/pg" \
    python3 scripts/idle-sockets.py "$GOIM" 18091 goim_w3 10000 W3 2>&1 | tail -1) || true
  echo "$line"
  w3=$(grep -o '[0-9.]* KiB per socket[^;)]*' <<<"$line" | paste -sd';' -) || w3="no figure: $line"
fi

echo
echo "== Issue 14's targets: medians of $ROUNDS"
echo "W1 ≥ 3× pgbench:          ×$(median <"$WORK/ratio")"
echo "W1 CPU ≤ 150 µs/msg:      $(median <"$WORK/cpu") µs"
echo "W1 p99 ≤ 50 ms at half:   $(median <"$WORK/p99") ms (--rate $half)"
echo "W2 ≥ 50,000 deliveries/s: $(median <"$WORK/w2")"
echo "W3 ≤ 10 KiB per socket:   $w3"
