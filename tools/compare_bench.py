#!/usr/bin/env python3
"""Runs `chainlog bench` from two builds alternately and prints medians side by side.

    tools/compare_bench.py BEFORE_BIN AFTER_BIN ROUNDS -- BENCH_ARGS...

Alternating the two in one run cancels most of this shared machine's drift.
"""
import json
import statistics
import subprocess
import sys

before, after, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
args = sys.argv[sys.argv.index("--") + 1:]
runs = {before: [], after: []}
for _ in range(rounds):
    for binary in (before, after):
        out = subprocess.run([binary, "bench", *args, "--json"], check=True,
                             capture_output=True, text=True).stdout
        runs[binary].append(json.loads(out))
keys = ["appends_per_sec", "p50_us", "p99_us", "max_us", "space_amplification",
        "verify_records_per_sec"]
print("bench", " ".join(args), f"({rounds} rounds, medians)")
for k in keys:
    b = statistics.median(r[k] for r in runs[before])
    a = statistics.median(r[k] for r in runs[after])
    print(f"  {k:22} before {b:12.2f}  after {a:12.2f}  after/before {a / b if b else 0:6.3f}")
