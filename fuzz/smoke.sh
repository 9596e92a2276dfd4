#!/usr/bin/env bash
# Fuzz smoke run: every target for FUZZ_SECONDS (default 30) without a sanitizer, starting
# from the committed seeds. Fails on any finding; the crashing input is left under
# fuzz/artifacts/<target>/. Works on stable Rust (no sanitizer means no -Z flags).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

# New corpus entries go to a scratch directory, so the committed seeds stay small.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo fuzz build -s none
failed=()
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    echo "=== $target (${seconds}s)"
    if cargo fuzz run -s none "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$work/$target.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|Done )' "$work/$target.log" || true
    else
        failed+=("$target")
        echo "--- $target FAILED; last lines of its log:"
        tail -n 40 "$work/$target.log"
        ls -1 "artifacts/$target" 2>/dev/null | sed "s|^|    artifact: fuzz/artifacts/$target/|" || true
    fi
done

if ((${#failed[@]})); then
    echo "fuzz smoke: findings in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz smoke: no findings"
