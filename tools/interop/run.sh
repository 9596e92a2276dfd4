#!/usr/bin/env bash
# Checks a SHA-256 chainlog ledger's checkpoint, inclusion proofs and consistency proofs
# with Go's golang.org/x/mod/sumdb/{note,tlog}, and that Go rejects tampered inputs.
# Builds the release CLI; installs Debian's Go packages if they are missing (needs root
# or sudo and access to the Debian archive; nothing else is downloaded).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
gopath=/usr/share/gocode

if ! command -v go >/dev/null || [ ! -d "$gopath/src/golang.org/x/mod/sumdb/tlog" ]; then
    echo "interop: installing golang-go and golang-golang-x-mod-dev" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go golang-golang-x-mod-dev
fi

(cd "$repo" && cargo build --release --bin chainlog)
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$repo/$target ;; esac
chainlog=$target/release/chainlog

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# GOPATH mode resolves golang.org/x/mod from Debian's source tree: no module proxy.
gocache=$(go env GOCACHE 2>/dev/null || true)
if [ -z "$gocache" ] || [ "$gocache" = off ]; then gocache=$work/gocache; fi
(cd "$here" && GOPATH=$gopath GO111MODULE=off GOFLAGS= GOCACHE=$gocache \
    go build -o "$work/interop" .)

ledger=$work/ledger
records=300
"$chainlog" init "$ledger" --hash sha256 >/dev/null
# Two appends so the tree spans more than one commit.
seq 0 199 | sed 's/^/interop event /' | "$chainlog" append "$ledger" --buffered >/dev/null
seq 200 $((records - 1)) | sed 's/^/interop event /' | "$chainlog" append "$ledger" >/dev/null
"$chainlog" keygen interop-test --out "$work/key" >/dev/null
"$chainlog" checkpoint "$ledger" --key "$work/key.key" >"$work/checkpoint"

check() {
    # Go verifies the checkpoint (and re-signs it with the signer key) on every run.
    "$work/interop" -vkey "$work/key.pub" -checkpoint "$work/checkpoint" \
        -signer "$work/key.key" "$@" >/dev/null
}

inclusion=0
for pair in "0 1" "0 2" "1 2" "5 7" "17 64" "63 64" "64 65" "100 257" "255 256" \
    "256 257" "0 $records" "150 $records" "$((records - 1)) $records"; do
    read -r index size <<<"$pair"
    f=$work/inclusion-$index-$size.json
    "$chainlog" prove "$ledger" "$index" --size "$size" --json >"$f"
    check -inclusion "$f"
    inclusion=$((inclusion + 1))
done

consistency=0
for pair in "1 2" "1 $records" "3 7" "7 8" "64 $records" "100 257" "128 256" \
    "200 $records" "257 $records" "$((records - 1)) $records" "$records $records"; do
    read -r old new <<<"$pair"
    f=$work/consistency-$old-$new.json
    "$chainlog" prove-consistency "$ledger" "$old" "$new" --json >"$f"
    check -consistency "$f"
    consistency=$((consistency + 1))
done

# chainlog's own verifier agrees on the proofs that reach the checkpoint's size.
"$chainlog" verify-proof "$work/inclusion-150-$records.json" --hash sha256 \
    --checkpoint "$work/checkpoint" --pub "$work/key.pub" >/dev/null
"$chainlog" verify-proof "$work/consistency-64-$records.json" --hash sha256 \
    --checkpoint "$work/checkpoint" --pub "$work/key.pub" >/dev/null

# Flips the hex digit 5 characters into the first string after `"field":` (or
# `"field":["` for a list) and writes the result to $3.
flip() {
    local s prefix pos c
    s=$(cat "$1")
    prefix=${s%%"$2"*}
    if [ "$prefix" = "$s" ]; then
        echo "interop: FAIL: no $2 in $1" >&2
        exit 1
    fi
    pos=$((${#prefix} + ${#2} + 5))
    c=${s:pos:1}
    if [ "$c" = 0 ]; then c=1; else c=0; fi
    printf '%s\n' "${s:0:pos}$c${s:pos+1}" >"$3"
}

# Go must fail with its "FAIL" exit code (1), not a usage error, on each tampered input.
rejected=0
expect_rejected() {
    local what=$1 rc=0
    shift
    "$work/interop" -vkey "$work/key.pub" -checkpoint "$@" >/dev/null 2>"$work/err" || rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "interop: FAIL: Go did not reject the $what (exit $rc)" >&2
        cat "$work/err" >&2
        exit 1
    fi
    rejected=$((rejected + 1))
}

flip "$work/inclusion-100-257.json" '"proof":["' "$work/bad-inclusion.json"
expect_rejected "inclusion proof with a flipped hash digit" "$work/checkpoint" \
    -inclusion "$work/bad-inclusion.json"
flip "$work/inclusion-100-257.json" '"hash":"' "$work/bad-leaf.json"
expect_rejected "inclusion proof with a flipped leaf hash digit" "$work/checkpoint" \
    -inclusion "$work/bad-leaf.json"
flip "$work/consistency-100-257.json" '"proof":["' "$work/bad-consistency.json"
expect_rejected "consistency proof with a flipped hash digit" "$work/checkpoint" \
    -consistency "$work/bad-consistency.json"
# A checkpoint claiming one record more than was signed.
sed "2s/^$records\$/$((records + 1))/" "$work/checkpoint" >"$work/bad-checkpoint"
if cmp -s "$work/checkpoint" "$work/bad-checkpoint"; then
    echo "interop: FAIL: could not alter the checkpoint's size line" >&2
    exit 1
fi
expect_rejected "checkpoint with an altered size" "$work/bad-checkpoint"

# The 64 hex digits after `"field":"` in file $1.
field() {
    local s
    s=$(cat "$1")
    s=${s#*"\"$2\":\""}
    printf '%s' "${s:0:64}"
}

# chainlog rejects the tampered proofs too (exit 1: invalid), given the true root.
for f in bad-inclusion:root bad-leaf:root bad-consistency:root; do
    rc=0
    "$chainlog" verify-proof "$work/${f%:*}.json" --hash sha256 \
        --root "$(field "$work/${f%:*}.json" "${f#*:}")" >/dev/null || rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "interop: FAIL: chainlog verify-proof did not reject ${f%:*} (exit $rc)" >&2
        exit 1
    fi
done

echo "interop: $inclusion inclusion, $consistency consistency, 1 checkpoint verified by Go;" \
    "$rejected tampered inputs rejected"
