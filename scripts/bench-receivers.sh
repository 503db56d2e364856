#!/usr/bin/env bash
# Measures webhook receivers with wrk on loopback, all under the same load, in one run:
#   (a) plain axum handler returning 200       (fullup-axum example bench_server plain)
#   (b) the same behind Verified<Bytes>        (bench_server bytes)
#   (c) the same behind Verified<Json<Value>>  (bench_server json)
#   (d) the seed document's Express receiver   (testdata/seed-receivers/node)
#   (e) the seed document's Flask receiver     (testdata/seed-receivers/python)
# Each request POSTs scripts/bench/body-1k.json (1024 bytes of canonical JSON, so that
# even the Express receiver's JSON.stringify check passes) with a valid fullup-signature.
#
# The machine has few cores: the receiver is pinned to SERVER_CPUS and wrk to WRK_CPUS
# so that every receiver gets the same single core (Node and Flask use one anyway).
# Modes are interleaved over ROUNDS rounds and the median requests/s is reported.
#
# Usage: scripts/bench-receivers.sh [--summarize]  (--summarize: only re-print the table
#        from the last run's wrk outputs in target/bench-receivers/)   (env: ROUNDS=3 DURATION=10s CONNECTIONS=32
#                                                 THREADS=1 SERVER_CPUS=0 WRK_CPUS=1 PORT=18100)
# Needs: wrk (Debian package), node + npm, python3 with Flask (pip install flask), openssl.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
WRK_CPUS=${WRK_CPUS:-1}
# Below the usual ephemeral range (32768+), where tests' port-0 sockets could collide.
PORT=${PORT:-18100}
SECRET=your_shared_secret_key
BODY=scripts/bench/body-1k.json
OUT=target/bench-receivers
mkdir -p "$OUT"

for tool in wrk node npm python3 openssl taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench-receivers: $tool is required" >&2; exit 2; }
done
python3 -c 'import flask' 2>/dev/null || { echo "bench-receivers: pip install flask" >&2; exit 2; }
if [ ! -d testdata/seed-receivers/node/node_modules ]; then
  (cd testdata/seed-receivers/node && npm ci --silent)
fi

cargo build --release -j2 -p fullup-axum --example bench_server
BENCH_SERVER=target/release/examples/bench_server

export BENCH_BODY=$PWD/$BODY
BENCH_SIGNATURE=$(openssl dgst -sha256 -hmac "$SECRET" -r <"$BODY" | cut -d' ' -f1)
export BENCH_SIGNATURE

pid=""
stop_server() {
  if [ -n "$pid" ]; then
    kill -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
trap stop_server EXIT

# start_server MODE PORT: starts the receiver in its own process group, pinned.
start_server() {
  local mode=$1 port=$2
  case $mode in
    a) setsid taskset -c "$SERVER_CPUS" "$BENCH_SERVER" plain "$port" >/dev/null 2>&1 & ;;
    b) setsid taskset -c "$SERVER_CPUS" "$BENCH_SERVER" bytes "$port" >/dev/null 2>&1 & ;;
    c) setsid taskset -c "$SERVER_CPUS" "$BENCH_SERVER" json "$port" >/dev/null 2>&1 & ;;
    d) (cd testdata/seed-receivers/node && PORT=$port exec setsid taskset -c "$SERVER_CPUS" node receiver.js >/dev/null 2>&1) & ;;
    e) (cd testdata/seed-receivers/python && PORT=$port exec setsid taskset -c "$SERVER_CPUS" python3 receiver.py >/dev/null 2>&1) & ;;
  esac
  pid=$!
  local url="http://127.0.0.1:$port/webhook-endpoint" status=""
  for _ in $(seq 1 100); do
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H 'content-type: application/json' \
      -H "fullup-signature: $BENCH_SIGNATURE" --data-binary "@$BODY" || true)
    [ "$status" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || { echo "bench-receivers: receiver ($mode) exited; is port $port free?" >&2; exit 1; }
    sleep 0.2
  done
  echo "bench-receivers: receiver ($mode) on $url never answered 200 (last: $status)" >&2
  exit 1
}

# group_cpu_ticks PGID: user + system CPU, in clock ticks, of the live processes of a
# process group (Flask's debug reloader serves from a child process).
group_cpu_ticks() {
  # Processes may exit while being read; cat then fails, which is expected.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g) t += $12 + $13 } END { print t + 0 }'
}

# measure MODE PORT ROUND: one warm-up and one measured wrk run; saves wrk's output
# followed by the receiver's CPU time per request, which other load on the machine
# disturbs much less than requests/s.
measure() {
  local mode=$1 port=$2 round=$3 url="http://127.0.0.1:$2/webhook-endpoint" before after
  local result="$OUT/$mode.$round.txt"
  start_server "$mode" "$port"
  taskset -c "$WRK_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s scripts/bench/post.lua "$url" >/dev/null
  before=$(group_cpu_ticks "$pid")
  taskset -c "$WRK_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/post.lua "$url" >"$result"
  after=$(group_cpu_ticks "$pid")
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '/requests in/ { n = $1 }
    END { printf "Server CPU us/request: %.1f\n", ticks * 1e6 / hz / n }' "$result" >>"$result"
  stop_server
}

modes=(a b c d e)
if [ "${1:-}" != --summarize ]; then
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!modes[@]}"; do
    mode=${modes[$i]}
    measure "$mode" $((PORT + i)) "$round"
    printf 'round %s %s: %s req/s, %s CPU us/request\n' "$round" "$mode" \
      "$(awk '/^Requests\/sec/ {print $2}' "$OUT/$mode.$round.txt")" "$(awk '/^Server CPU/ {print $4}' "$OUT/$mode.$round.txt")"
  done
done
fi

# median FIELD-AWK MODE: the median over rounds of a value extracted from wrk's output.
median() {
  local program=$1 mode=$2
  for round in $(seq 1 "$ROUNDS"); do awk "$program" "$OUT/$mode.$round.txt"; done | sort -g | awk '
    { v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Latencies in wrk are printed with units (us, ms, s); convert to milliseconds.
to_ms='function ms(x) { if (x ~ /us$/) return x / 1000; if (x ~ /ms$/) return x + 0; if (x ~ /s$/) return x * 1000; return x }'

declare -A rps cpu p50 p99 errors
for mode in "${modes[@]}"; do
  rps[$mode]=$(median '/^Requests\/sec/ {print $2}' "$mode")
  cpu[$mode]=$(median '/^Server CPU/ {print $4}' "$mode")
  p50[$mode]=$(median "$to_ms /^ +50%/ {print ms(\$2)}" "$mode")
  p99[$mode]=$(median "$to_ms /^ +99%/ {print ms(\$2)}" "$mode")
  errors[$mode]=$(for r in $(seq 1 "$ROUNDS"); do awk '/Non-2xx/ {n += $5} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$OUT/$mode.$r.txt"; done | awk '{ s += $1 } END { print s + 0 }')
done

ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", x / y }'; }
# Load from other processes drifts during a run; a ratio of two back-to-back runs of
# the same round is less exposed to it than a ratio of medians.
paired() {
  for round in $(seq 1 "$ROUNDS"); do
    ratio "$(awk '/^Requests\/sec/ {print $2}' "$OUT/$1.$round.txt")" "$(awk '/^Requests\/sec/ {print $2}' "$OUT/$2.$round.txt")"
    echo
  done | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "median %.2f, range %.2f-%.2f", m, v[1], v[NR] }'
}
declare -A names
names=([a]='(a) axum, plain handler' [b]='(b) axum + `Verified<Bytes>`' [c]='(c) axum + `Verified<Json<Value>>`'
       [d]='(d) seed Express receiver' [e]='(e) seed Flask receiver')
{
  echo "| receiver | requests/s | vs (a) | server CPU µs/request | p50 ms | p99 ms | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for mode in "${modes[@]}"; do
    printf '| %s | %.0f | %s | %.1f | %.2f | %.2f | %s |\n' "${names[$mode]}" "${rps[$mode]}" \
      "$(ratio "${rps[$mode]}" "${rps[a]}")" "${cpu[$mode]}" "${p50[$mode]}" "${p99[$mode]}" "${errors[$mode]}"
  done
  echo
  echo "Medians of $ROUNDS rounds. Requests/s: (b)/(a) = $(ratio "${rps[b]}" "${rps[a]}"), (b)/(d) = $(ratio "${rps[b]}" "${rps[d]}"), (b)/(e) = $(ratio "${rps[b]}" "${rps[e]}")."
  echo "Per-round paired (b)/(a) requests/s: $(paired b a)."
  echo "CPU per request: (b)/(a) = $(ratio "${cpu[b]}" "${cpu[a]}"), (d)/(b) = $(ratio "${cpu[d]}" "${cpu[b]}"), (e)/(b) = $(ratio "${cpu[e]}" "${cpu[b]}")."
} | tee "$OUT/summary.md"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
