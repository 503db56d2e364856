#!/usr/bin/env bash
# Times the console's deliveries page on a SQLite store holding a 1,000,000-delivery
# backlog (issue 13): the service's own server-side time, from its log (the access
# log's duration_ms, and the page's store read in microseconds at debug level).
#
# 1. starts `fullup serve --workers 0` on a fresh SQLite file, creates a site and a
#    webhook through the API, stops it;
# 2. inserts BACKLOG events and as many pending deliveries of that webhook with
#    python3's sqlite3 (ids are ULIDs, as the service makes them);
# 3. starts the service again, signs in to the console (curl, cookie jar, the form's
#    CSRF token) and GETs each page ROUNDS times: the first page, the page at a cursor
#    half-way down, the page filtered by event type, by webhook, and by state (pending,
#    which every delivery is, and failed, which none is: the whole range is read).
#
# Usage: scripts/console-backlog.sh      (env: BACKLOG=1000000 ROUNDS=20 PORT=18300
#        FULLUP_BIN=target/release/fullup, built with `cargo build --release` if missing;
#        DATABASE_URL=postgres://USER@HOST/EMPTY_DB to measure PostgreSQL instead)
# Needs: python3, curl, jq; psql for PostgreSQL.
set -euo pipefail

cd "$(dirname "$0")/.."
backlog="${BACKLOG:-1000000}"
rounds="${ROUNDS:-20}"
port="${PORT:-18300}"
bin="${FULLUP_BIN:-${CARGO_TARGET_DIR:-target}/release/fullup}"
[ -x "$bin" ] || cargo build --release -p fullup
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
export FULLUP_ADMIN_TOKEN=console-backlog-admin-token-0123456789
base="http://127.0.0.1:$port"
auth=(-H "Authorization: Bearer $FULLUP_ADMIN_TOKEN" -H 'content-type: application/json')

database_url="${DATABASE_URL:-sqlite://$dir/fullup.db}"
if [[ "$database_url" == postgres* ]]; then
    FULLUP_MAIN_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
    export FULLUP_MAIN_KEY
fi

serve() {
    RUST_LOG="info,fullup_server::console=debug" "$bin" serve --database-url "$database_url" \
        --listen "127.0.0.1:$port" --workers 0 --log-format json 2>>"$dir/log.jsonl" &
    pid=$!
    for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && return; sleep 0.1; done
    echo "the service did not start" >&2
    exit 1
}

serve
site=$(curl -sf "${auth[@]}" -X POST "$base/v1/sites" -d '{"name":"backlog"}' | jq -r .id)
webhook=$(curl -sf "${auth[@]}" -X POST "$base/v1/sites/$site/webhooks" \
    -d '{"url":"https://receiver.example.com/hook","event_types":["*"],"paused":true}' | jq -r .id)
kill "$pid"; wait "$pid" || true

echo "inserting $backlog events and deliveries..."
if [[ "$database_url" == postgres* ]]; then
    python3 - "$dir" "$site" "$webhook" "$backlog" <<'EOF'
import csv, os, sys, time
out, site, webhook, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
def ulid(ms):
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))
start = int(time.time() * 1000) - n
types = ["order.paid", "order.refunded", "form.submitted", "user.created"]
with open(f"{out}/events.csv", "w", newline="") as e, open(f"{out}/deliveries.csv", "w", newline="") as d:
    ew, dw = csv.writer(e), csv.writer(d)
    for i in range(n):
        ms = start + i
        evt, dlv, t = "evt_" + ulid(ms), "dlv_" + ulid(ms), types[i % len(types)]
        payload = '{"created_at":"2026-01-01T00:00:00.000Z","data":{},"id":"%s","type":"%s"}' % (evt, t)
        ew.writerow([evt, site, t, payload, ms, "\\x" + "00" * 32])
        dw.writerow([dlv, site, evt, webhook, "pending", 0, ms, ms, ms])
EOF
    psql -q "$database_url" -c "\\copy events (id, site_id, type, payload, created_at, request_hash) FROM '$dir/events.csv' WITH (FORMAT csv)"
    psql -q "$database_url" -c "\\copy deliveries (id, site_id, event_id, webhook_id, state, attempt_count, next_attempt_at, created_at, updated_at) FROM '$dir/deliveries.csv' WITH (FORMAT csv)"
    psql -q "$database_url" -c "ANALYZE"
    psql -Atq "$database_url" -c "SELECT COUNT(*) || ' deliveries' FROM deliveries"
else
python3 - "$dir/fullup.db" "$site" "$webhook" "$backlog" <<'EOF'
import os, sqlite3, sys, time
db, site, webhook, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
def ulid(ms):
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))
conn = sqlite3.connect(db)
start = int(time.time() * 1000) - n  # one per millisecond, oldest first
types = ["order.paid", "order.refunded", "form.submitted", "user.created"]
def rows():
    for i in range(n):
        ms = start + i
        yield ms, "evt_" + ulid(ms), "dlv_" + ulid(ms), types[i % len(types)]
conn.execute("BEGIN")
batch_e, batch_d = [], []
for ms, evt, dlv, t in rows():
    payload = '{"created_at":"2026-01-01T00:00:00.000Z","data":{},"id":"%s","type":"%s"}' % (evt, t)
    batch_e.append((evt, site, t, payload, ms, b"\0" * 32))
    batch_d.append((dlv, site, evt, webhook, "pending", 0, ms, ms, ms))
    if len(batch_e) == 50000:
        conn.executemany("INSERT INTO events (id, site_id, type, payload, created_at, request_hash) VALUES (?,?,?,?,?,?)", batch_e)
        conn.executemany("INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", batch_d)
        batch_e, batch_d = [], []
if batch_e:
    conn.executemany("INSERT INTO events (id, site_id, type, payload, created_at, request_hash) VALUES (?,?,?,?,?,?)", batch_e)
    conn.executemany("INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, next_attempt_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", batch_d)
conn.commit()
conn.execute("ANALYZE")
print(conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0], "deliveries")
EOF
fi

serve
jar="$dir/cookies"
csrf=$(curl -sf -c "$jar" "$base/console/sign-in" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')
curl -sf -b "$jar" -c "$jar" -o /dev/null -H "Origin: $base" \
    --data-urlencode "csrf=$csrf" --data-urlencode "token=$FULLUP_ADMIN_TOKEN" "$base/console/sign-in"
middle_sql="SELECT id FROM deliveries ORDER BY id LIMIT 1 OFFSET $((backlog / 2))"
if [[ "$database_url" == postgres* ]]; then
    middle=$(psql -Atq "$database_url" -c "$middle_sql")
else
    middle=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$dir/fullup.db" "$middle_sql")
fi
pages=(
    "first page|/console/sites/$site/deliveries"
    "cursor half-way|/console/sites/$site/deliveries?cursor=$middle"
    "event type|/console/sites/$site/deliveries?event_type=order.paid"
    "webhook|/console/sites/$site/deliveries?webhook=$webhook"
    "state pending|/console/sites/$site/deliveries?state=pending"
    "state failed|/console/sites/$site/deliveries?state=failed"
)
: >"$dir/log.jsonl"
for page in "${pages[@]}"; do
    path="${page#*|}"
    for _ in $(seq "$rounds"); do
        code=$(curl -s -b "$jar" -o /dev/null -w '%{http_code}' "$base$path")
        [ "$code" = 200 ] || { echo "GET $path answered $code" >&2; exit 1; }
    done
done
sleep 0.2
printf '%-16s %8s %8s %8s   %s\n' page "p50 ms" "max ms" "read µs" "(server side, $rounds requests each)"
i=0
for page in "${pages[@]}"; do
    name="${page%%|*}"
    from=$((i * rounds)); i=$((i + 1))
    jq -rs --argjson from "$from" --argjson n "$rounds" --arg name "$name" '
        [.[] | select(.route? == "/console/sites/{site_id}/deliveries")] as $req
        | [.[] | select(.message? == "console deliveries page read")] as $read
        | ($req[$from:$from + $n] | map(.duration_ms) | sort) as $d
        | ($read[$from:$from + $n] | map(.elapsed_us) | sort) as $r
        | "\($name)|\($d[($n / 2 | floor)])|\($d[-1])|\($r[($n / 2 | floor)])"' "$dir/log.jsonl" |
        awk -F'|' '{ printf "%-16s %8s %8s %8s\n", $1, $2, $3, $4 }'
done
