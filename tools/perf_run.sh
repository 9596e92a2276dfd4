#!/usr/bin/env bash
# Every figure in docs/PERFORMANCE.md, measured in one run on this machine:
#   tools/perf_run.sh > perf.txt 2>&1
# Takes ~15 minutes. Close other work first: the machine is small (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin chainlog
B=./target/release/chainlog
say() { printf '\n### %s\n' "$*"; }

say "uptime"; uptime

say "chainlog vs SQLite (bench/benches/vs_sqlite.rs), 200-byte payloads"
VS_SQLITE_SYNC_RECORDS=${VS_SQLITE_SYNC_RECORDS:-4000} VS_SQLITE_BUFFERED_RECORDS=${VS_SQLITE_BUFFERED_RECORDS:-200000} \
    cargo bench -p chainlog-bench --bench vs_sqlite

say "chainlog bench (5 runs each; median in docs)"
for args in "--threads 1 --records 5000" \
            "--threads 64 --records 50000" \
            "--threads 1 --records 300000 --durability buffered" \
            "--threads 1 --records 1000000 --durability buffered --batch 1000"; do
    for i in 1 2 3 4 5; do
        echo "bench $args: $($B bench $args --json)"
    done
done

say "open a 1,000,000-record ledger after a clean close"
dir=$(mktemp -d)
$B bench --dir "$dir/l" --records 1000000 --durability buffered --batch 1000 --json > /dev/null
for i in 1 2 3 4 5; do
    /usr/bin/time -f "open+append(sync)+close: %e s, peak RSS %M KB" $B append "$dir/l" "probe $i" > /dev/null
done
rm -rf "$dir"

say "criterion: append, batch, verify, export, get, open, proofs"
cargo bench -p chainlog-bench --bench ledger -- --noplot 2>&1 | grep -E '^[a-z_]+/|time:|thrpt:'
