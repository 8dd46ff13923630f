#!/usr/bin/env bash
# Instructions per record, counted by callgrind (repeatable on a shared, noisy machine):
# each contender logs the peers benchmark's record from one producer thread
# (`peers child <contender> threads-1 N`), twice, with N1 and N2 records; the difference divided
# by N2 - N1 removes setup and warm-up. "producer" counts the producing thread only (of the
# threads other than main, the one that ran the most instructions: the producer, for every
# contender here); "all threads" adds the worker/appender threads that write.
#
#   bench/callgrind.sh                     # kakashi, tracing-lossless, baseline
#   bench/callgrind.sh kakashi baseline    # a choice of contenders
#   PEERS_BIN=/tmp/peers-old bench/callgrind.sh kakashi-tracing   # a binary built earlier
#
# Needs valgrind (`apt-get install valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
if [ -n "${PEERS_BIN:-}" ]; then
    bin=$PEERS_BIN # a `peers` binary built earlier (a before/after comparison)
else
    cargo build --release -p kakashi-bench --bin peers >/dev/null
    bin="${CARGO_TARGET_DIR:-$PWD/target}/release/peers"
fi
contenders=("$@")
[ ${#contenders[@]} -gt 0 ] || contenders=(kakashi tracing-lossless baseline)
n1=20000
n2=220000

# Prints "<producer Ir> <all-threads Ir>" for one run.
count() {
    local contender=$1 records=$2 dir
    dir=$(mktemp -d)
    (cd "$dir" && valgrind --tool=callgrind --separate-threads=yes \
        "$bin" child "$contender" threads-1 "$records" >/dev/null 2>&1)
    local producer all
    producer=$(grep -h '^totals:' "$dir"/callgrind.out.*-[0-9]* | tail -n +2 | awk '$2 > m {m = $2} END {print m}')
    all=$(grep -h '^totals:' "$dir"/callgrind.out.*-[0-9]* | awk '{s += $2} END {print s}')
    rm -rf "$dir"
    echo "$producer $all"
}

printf '| contender | producer Ir/record | all threads Ir/record |\n|---|---:|---:|\n'
for contender in "${contenders[@]}"; do
    read -r p1 a1 < <(count "$contender" "$n1")
    read -r p2 a2 < <(count "$contender" "$n2")
    awk -v c="$contender" -v p1="$p1" -v p2="$p2" -v a1="$a1" -v a2="$a2" -v n="$((n2 - n1))" \
        'BEGIN { printf "| %s | %.0f | %.0f |\n", c, (p2 - p1) / n, (a2 - a1) / n }'
done
