#!/usr/bin/env bash
# Compares fullup-signature's HMAC-SHA256 signing throughput with OpenSSL's, measured
# in the same run on the same core, at 256 B, 1 KiB and 64 KiB bodies.
#
# Usage: scripts/bench-signing.sh            (from anywhere in the repository)
# Env:   BENCH_SECONDS (default 3) per size and tool, BENCH_ROUNDS (default 3) rounds
#        (best kept), BENCH_CORE (default 1) the core to pin to.
# Needs: cargo, openssl (3.x), jq; taskset (util-linux) for pinning, if available.
# Figures in docs/benchmarks.md ("Signing") come from this script.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${BENCH_SECONDS:-3}"
rounds="${BENCH_ROUNDS:-3}"
core="${BENCH_CORE:-1}"
sizes=(256 1024 65536)

for tool in cargo openssl jq; do
    command -v "$tool" >/dev/null || { echo "bench-signing: $tool is required" >&2; exit 2; }
done
if [[ -n "${RUSTFLAGS:-}" ]]; then
    echo "bench-signing: note: RUSTFLAGS='$RUSTFLAGS' is set; users build without it" >&2
fi

pin=()
if command -v taskset >/dev/null && taskset -c "$core" true 2>/dev/null; then
    pin=(taskset -c "$core")
    echo "pinned to core $core"
else
    echo "taskset unavailable or core $core absent: not pinned" >&2
fi

# Build unpinned (fast), then measure pinned.
cargo bench -p fullup-signature --bench sign --no-run -j2 >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)"

# Median time per iteration (ns) of criterion benchmark signing/<name>/<size>, as bytes/s.
criterion_bps() {
    local median
    median="$(jq '.median.point_estimate' "$target_dir/criterion/signing/$1/$2/new/estimates.json")"
    jq -n "$2 / ($median * 1e-9)"
}

max() { jq -n "[$1, $2] | max"; }

mbps() { jq -n "$1 / 1e6 | floor"; }

# Both tools are timed by the wall clock (OpenSSL's -elapsed), size by size, so the two
# sides of each ratio see the same machine load. Other processes can only slow a run
# down, so each figure is the best of BENCH_ROUNDS rounds, for both tools alike.
declare -A best
for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    for size in "${sizes[@]}"; do
        # -mr prints "+F:<n>:hmac(sha256):<bytes per second>" for the single -bytes size.
        line="$("${pin[@]}" openssl speed -elapsed -mr -seconds "$seconds" -bytes "$size" \
            -hmac sha256 2>/dev/null | grep '^+F:')"
        best[openssl/$size]="$(max "${best[openssl/$size]:-0}" "${line##*:}")"
        "${pin[@]}" cargo bench -p fullup-signature --bench sign -- \
            --warm-up-time 1 --measurement-time "$seconds" "^signing/[a-z]+/$size\$" >&2
        for name in signer sign standard; do
            best[$name/$size]="$(max "${best[$name/$size]:-0}" "$(criterion_bps "$name" "$size")")"
        done
    done
done

echo
echo "| body | fullup Signer (MB/s) | fullup sign() (MB/s) | standard Signer (MB/s) | OpenSSL HMAC-SHA256 (MB/s) | Signer / OpenSSL |"
echo "|---:|---:|---:|---:|---:|---:|"
for size in "${sizes[@]}"; do
    signer="${best[signer/$size]}"
    oneshot="${best[sign/$size]}"
    standard="${best[standard/$size]}"
    ossl="${best[openssl/$size]}"
    ratio="$(jq -n "$signer / $ossl * 100 | . * 10 | round / 10")"
    echo "| $size B | $(mbps "$signer") | $(mbps "$oneshot") | $(mbps "$standard") | $(mbps "$ossl") | $ratio % |"
done
