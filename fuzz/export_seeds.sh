#!/usr/bin/env bash
# Rewrites the export_reader seeds with a built chainlog binary (run after a format
# change; tests/export.rs checks that every seed still verifies).
#
#   fuzz/export_seeds.sh path/to/chainlog
set -euo pipefail
bin=$(realpath "$1")
out=$(cd "$(dirname "$0")" && pwd)/corpus/export_reader
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The key the export_reader target verifies with (Ed25519 seed 0x66 x 32).
printf 'PRIVATE+KEY+fuzz+cf11819d+AWZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm\n' >fuzz.key
"$bin" init l >/dev/null
"$bin" append l one two three >/dev/null
"$bin" export l three_records.export >/dev/null
"$bin" append l four five six seven >/dev/null
"$bin" export l signed.export --key fuzz.key >/dev/null
"$bin" redact l 4 --reason gone >/dev/null
"$bin" export l redacted_range.export --from 2 --to 7 --redact 3 --key fuzz.key >/dev/null
cp ./*.export "$out/"
