#!/usr/bin/env python3
"""The MSRV check: no other toolchain can be installed here, so this checks what can be
checked with one. Every package the library and the CLI build with (normal and build
dependencies for this platform, as resolved in Cargo.lock) must declare a rust-version no newer than the
workspace's; clippy's `incompatible_msrv` lint (run with -D warnings in .ci/run) catches
uses of standard-library items stabilised after it."""
import json
import subprocess
import sys


def version(v):
    return tuple(int(x) for x in v.split("."))


meta = json.loads(
    subprocess.check_output(
        [
            "cargo", "metadata", "--format-version", "1", "--locked",
            "--filter-platform", subprocess.check_output(
                ["rustc", "--print", "host-tuple"], text=True).strip(),
        ],
        text=True,
    )
)
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
roots = [p for p in meta["packages"] if p["name"] in ("chainlog", "chainlog-cli")]
msrv = {p["name"]: p["rust_version"] for p in roots}
if len(set(msrv.values())) != 1 or None in msrv.values():
    sys.exit(f"the library and the CLI must declare one rust-version: {msrv}")
ours = version(next(iter(msrv.values())))

seen, todo = set(), [p["id"] for p in roots]
while todo:
    pid = todo.pop()
    if pid in seen:
        continue
    seen.add(pid)
    for dep in nodes[pid]["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if kinds & {None, "build"}:
            todo.append(dep["pkg"])

bad = []
for pid in sorted(seen, key=lambda i: pkgs[i]["name"]):
    p = pkgs[pid]
    rv = p.get("rust_version")
    if rv and version(rv) > ours:
        bad.append(f"{p['name']} {p['version']} needs Rust {rv}")
print(f"MSRV {'.'.join(map(str, ours))}: {len(seen)} packages checked")
if bad:
    sys.exit("newer than the MSRV:\n  " + "\n  ".join(bad))
