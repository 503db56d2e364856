#!/usr/bin/env bash
# Retention under load (issue 15, item 5): does pruning a store of ROWS old deliveries
# disturb delivery latency, and (SQLite) does the file stop growing once pruning keeps
# up?
#
# 1. starts `fullup serve` on a fresh database, creates a site and a paused webhook
#    through the API, stops it;
# 2. inserts ROWS events 40 days old, each with one succeeded delivery and one attempt
#    (python3's sqlite3, or CSV files and psql's \copy; ids are ULIDs of their age, as the
#    service makes them), and keeps that database as the seed;
# 3. runs `fullup bench --scenario latency` RUNS times on a copy of the seed (a file
#    copy, flushed to disk; PostgreSQL: `CREATE DATABASE … TEMPLATE`), alternating
#    without retention and with `FULLUP_RETENTION=30d` (first pass after 1 s, default
#    batch and pause), which the bench's `fullup serve` inherits: the p50/p99/max of each
#    run, and how many old events the runs with retention pruned meanwhile;
# 4. SQLite, steady state: on another copy, serves with retention until every old event
#    is pruned (the pruning rate), then inserts ROWS old events again: the file's size
#    and free pages after the seed, after the prune, and after the second seed.
#
# Usage: scripts/retention-bench.sh   (env: ROWS=1000000 RUNS=4 RATE=1000 DURATION=30s
#        PRUNE_BATCH=50 PRUNE_PAUSE=20ms (the runs with retention: the defaults), STEADY=0 to skip 4,
#        PORT=18310 FULLUP_BIN=target/release/fullup, built with `cargo build --release`
#        if missing; POSTGRES=postgres://USER@HOST to measure PostgreSQL instead, in the
#        databases retention_seed and retention_run it creates and drops)
# Needs: python3, curl, jq, bc; sqlite3, or psql, createdb and dropdb.
set -euo pipefail

cd "$(dirname "$0")/.."
rows="${ROWS:-1000000}"
runs="${RUNS:-4}"
rate="${RATE:-1000}"
duration="${DURATION:-30s}"
port="${PORT:-18310}"
postgres="${POSTGRES:-}"
prune_batch="${PRUNE_BATCH:-50}"
prune_pause="${PRUNE_PAUSE:-20ms}"
bin="${FULLUP_BIN:-${CARGO_TARGET_DIR:-target}/release/fullup}"
[ -x "$bin" ] || cargo build --release -p fullup
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
export FULLUP_ADMIN_TOKEN=retention-bench-admin-token-0123456789
FULLUP_MAIN_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
export FULLUP_MAIN_KEY
unset FULLUP_RETENTION FULLUP_PRUNE_INTERVAL FULLUP_PRUNE_BATCH FULLUP_PRUNE_PAUSE
base="http://127.0.0.1:$port"
auth=(-H "Authorization: Bearer $FULLUP_ADMIN_TOKEN" -H 'content-type: application/json')

if [ -n "$postgres" ]; then
    seed_url="$postgres/retention_seed"
    run_url="$postgres/retention_run"
    dropdb --if-exists --force --maintenance-db="$postgres/postgres" retention_run
    dropdb --if-exists --force --maintenance-db="$postgres/postgres" retention_seed
    createdb --maintenance-db="$postgres/postgres" retention_seed
else
    seed_url="sqlite://$dir/seed.db"
    run_url="sqlite://$dir/run.db"
fi

serve() { # serve URL [flags...]
    local url=$1; shift
    RUST_LOG=warn "$bin" serve --database-url "$url" --listen "127.0.0.1:$port" "$@" &
    pid=$!
    for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && return; sleep 0.1; done
    echo "the service did not start" >&2
    exit 1
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }

seed() { # seed URL: ROWS events 40 days old, each with a succeeded delivery and an attempt
    python3 - "$1" "$dir" "$site" "$webhook" "$rows" <<'EOF'
import csv, os, sqlite3, subprocess, sys, time
url, out, site, webhook, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
def ulid(ms):
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))
start = int(time.time() * 1000) - 40 * 86_400_000 - n  # one per millisecond, oldest first
data = "x" * 200
def rows():
    for i in range(n):
        ms = start + i
        evt, dlv, att = "evt_" + ulid(ms), "dlv_" + ulid(ms), "att_" + ulid(ms)
        payload = '{"created_at":"2026-01-01T00:00:00.000Z","data":{"x":"%s"},"id":"%s","type":"order.paid"}' % (data, evt)
        yield ((evt, site, "order.paid", payload, ms),
               (dlv, site, evt, webhook, "succeeded", 1, ms, ms),
               (att, dlv, webhook, 1, ms, 12, 204, "ok"))
EVENTS = "events (id, site_id, type, payload, created_at, request_hash)"
DELIVERIES = "deliveries (id, site_id, event_id, webhook_id, state, attempt_count, created_at, updated_at)"
ATTEMPTS = "attempts (id, delivery_id, webhook_id, attempt_number, started_at, duration_ms, status_code, response_body)"
if url.startswith("postgres"):
    files = [open(f"{out}/{t}.csv", "w", newline="") for t in ("events", "deliveries", "attempts")]
    writers = [csv.writer(f) for f in files]
    for e, d, a in rows():
        writers[0].writerow(e + ("\\x" + "00" * 32,))
        writers[1].writerow(d)
        writers[2].writerow(a)
    for f in files:
        f.close()
    for table, name in ((EVENTS, "events"), (DELIVERIES, "deliveries"), (ATTEMPTS, "attempts")):
        subprocess.run(["psql", "-q", url, "-c", f"\\copy {table} FROM '{out}/{name}.csv' WITH (FORMAT csv)"], check=True)
    subprocess.run(["psql", "-q", url, "-c", "VACUUM ANALYZE"], check=True)
else:
    conn = sqlite3.connect(url.removeprefix("sqlite://"))
    conn.execute("BEGIN")
    batch = ([], [], [])
    def flush():
        conn.executemany(f"INSERT INTO {EVENTS} VALUES (?,?,?,?,?,?)", batch[0])
        conn.executemany(f"INSERT INTO {DELIVERIES} VALUES (?,?,?,?,?,?,?,?)", batch[1])
        conn.executemany(f"INSERT INTO {ATTEMPTS} VALUES (?,?,?,?,?,?,?,?)", batch[2])
        for b in batch:
            b.clear()
    for e, d, a in rows():
        batch[0].append(e + (b"\0" * 32,))
        batch[1].append(d)
        batch[2].append(a)
        if len(batch[0]) == 50000:
            flush()
    flush()
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
EOF
}

sql() { # sql URL QUERY: one value
    if [[ "$1" == postgres* ]]; then psql -Atq "$1" -c "$2"; else sqlite3 "${1#sqlite://}" "$2"; fi
}
fresh_run() { # the run database, a copy of the seed
    if [ -n "$postgres" ]; then
        dropdb --if-exists --force --maintenance-db="$postgres/postgres" retention_run
        createdb --maintenance-db="$postgres/postgres" -T retention_seed retention_run
    else
        rm -f "$dir"/run.db*
        cp "$dir/seed.db" "$dir/run.db"
        # On disk now: otherwise the service's first fsync of the file (its first WAL
        # checkpoint) flushes the whole copy, a stall of seconds in the middle of a run.
        sync
    fi
}
size() { # size DB: file bytes (WAL included) and free pages
    local wal=0
    [ -f "$1-wal" ] && wal=$(stat -c %s "$1-wal")
    echo "$(( $(stat -c %s "$1") + wal )) bytes, $(sqlite3 "$1" 'PRAGMA freelist_count') free pages of $(sqlite3 "$1" 'PRAGMA page_count')"
}

serve "$seed_url"
site=$(curl -sf "${auth[@]}" -X POST "$base/v1/sites" -d '{"name":"old"}' | jq -r .id)
webhook=$(curl -sf "${auth[@]}" -X POST "$base/v1/sites/$site/webhooks" \
    -d '{"url":"https://receiver.example.com/hook","event_types":["*"],"paused":true}' | jq -r .id)
stop
echo "seeding $rows old events, deliveries and attempts..."
started=$(date +%s)
seed "$seed_url"
sync
echo "seeded in $(( $(date +%s) - started )) s"

echo
echo "latency runs (rate $rate/s for $duration), alternating without and with retention (batch $prune_batch, pause $prune_pause):"
for i in $(seq "$runs"); do
    fresh_run
    if (( i % 2 == 1 )); then mode=without; else mode=with; fi
    if [ "$mode" = with ]; then
        export FULLUP_RETENTION=30d FULLUP_PRUNE_INTERVAL=1s
        export FULLUP_PRUNE_BATCH="$prune_batch" FULLUP_PRUNE_PAUSE="$prune_pause"
    else
        unset FULLUP_RETENTION FULLUP_PRUNE_INTERVAL
    fi
    "$bin" bench --scenario latency --rate "$rate" --duration "$duration" \
        --database-url "$run_url" --json >"$dir/run-$i.json"
    unset FULLUP_RETENTION FULLUP_PRUNE_INTERVAL FULLUP_PRUNE_BATCH FULLUP_PRUNE_PAUSE
    left=$(sql "$run_url" "SELECT COUNT(*) FROM events WHERE site_id = '$site'")
    jq -r --arg mode "$mode" --arg i "$i" --argjson pruned "$((rows - left))" \
        '"run \($i) \($mode) retention: p50 \(.latency.p50_ms) ms, p95 \(.latency.p95_ms) ms, p99 \(.latency.p99_ms) ms, max \(.latency.max_ms) ms, \(.deliveries_verified) of \(.events) delivered; old events pruned meanwhile: \($pruned)"' \
        "$dir/run-$i.json"
done

{ [ -n "$postgres" ] || [ "${STEADY:-1}" = 0 ]; } && exit 0
echo
echo "steady state:"
rm -f "$dir"/run.db*
cp "$dir/seed.db" "$dir/steady.db"
sync
echo "  seeded:         $(size "$dir/steady.db")"
FULLUP_RETENTION=30d FULLUP_PRUNE_INTERVAL=1s FULLUP_PRUNE_BATCH="$prune_batch" \
    FULLUP_PRUNE_PAUSE="$prune_pause" serve "sqlite://$dir/steady.db"
started=$(date +%s.%N)
until [ "$(curl -sf "$base/metrics" | awk '/^fullup_pruned_rows_total\{table="events"\}/ { print $2 }')" = "$rows" ]; do
    sleep 0.5
done
took=$(echo "$(date +%s.%N) - $started - 1" | bc)
stop
echo "  pruned $rows events (with their deliveries and attempts) in ${took} s after the first pass began, $(echo "$rows / $took" | bc) events/s"
echo "  after prune:    $(size "$dir/steady.db")"
seed "sqlite://$dir/steady.db"
echo "  seeded again:   $(size "$dir/steady.db")"
