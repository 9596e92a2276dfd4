#!/usr/bin/env bash
# Checks a SHA-256 chainlog ledger's checkpoint, inclusion proofs and consistency proofs
# with Go's golang.org/x/mod/sumdb/{note,tlog}, and that Go rejects tampered inputs; then
# publishes a ledger as a C2SP tlog-tiles log in steps and has Go read it as a tlog client
# (tlog.TileHashReader over the tiles) after each, and reject tampered tiles and entries.
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

# A published log, read by Go as a tlog client after each publish. The sizes end on tile
# boundaries and inside partial tiles, at level 0 and above (65536 leaves fill a level-1
# tile; 65836 leaves have partial tiles at levels 0, 1 and 2).
pub=$work/published
tledger=$work/tiles-ledger
"$chainlog" init "$tledger" --hash sha256 >/dev/null
tiles_ok() {
    "$work/interop" -vkey "$work/key.pub" -tiles "$pub" "$@" >"$work/tiles-out" 2>"$work/err" || {
        echo "interop: FAIL: Go did not accept the published log" >&2
        cat "$work/err" >&2
        exit 1
    }
}
# The count before `$2` in the -tiles summary.
count() { local s; s=$(cat "$1"); s=${s%% "$2"*}; printf '%s' "${s##* }"; }
publishes=0
tiles_inclusion=0
tiles_consistency=0
prev=()
have=0
for size in 1 255 256 257 300 511 512 65536 65836; do
    seq $have $((size - 1)) | sed 's/^/tiles event /' | "$chainlog" append "$tledger" --buffered >/dev/null
    have=$size
    "$chainlog" publish "$tledger" "file://$pub" --key "$work/key.key" >/dev/null
    publishes=$((publishes + 1))
    "$chainlog" verify-remote "file://$pub" --pub "$work/key.pub" --full >/dev/null
    tiles_ok ${prev[@]+"${prev[@]}"}
    if [ "$(count "$work/tiles-out" 'entries hashed')" -ne "$size" ]; then
        echo "interop: FAIL: Go did not hash all $size entries: $(cat "$work/tiles-out")" >&2
        exit 1
    fi
    tiles_inclusion=$((tiles_inclusion + $(count "$work/tiles-out" inclusion,)))
    tiles_consistency=$((tiles_consistency + $(count "$work/tiles-out" consistency)))
    cp "$pub/checkpoint" "$work/checkpoint-$size"
    prev+=(-prev "$work/checkpoint-$size")
    # A copy of the ledger at 300 records, to fork from.
    if [ "$size" = 300 ]; then cp -r "$tledger" "$work/fork"; fi
done

# A client holding the checkpoint at 300 reads partial tiles (0/001.p/44, 1/000.p/1) the
# log has since outgrown; with them gone, Go reads the full tiles at their place instead.
rm -rf "$work/pruned" && cp -r "$pub" "$work/pruned"
rm "$work/pruned/tile/0/001.p/44" "$work/pruned/tile/entries/001.p/44" "$work/pruned/tile/1/000.p/1"
"$work/interop" -vkey "$work/key.pub" -tiles "$work/pruned" -prev "$work/checkpoint-300" \
    >"$work/tiles-out" 2>"$work/err" || {
    echo "interop: FAIL: Go did not read the log without its outgrown partial tiles" >&2
    cat "$work/err" >&2
    exit 1
}
if [ "$(count "$work/tiles-out" 'from a wider tile')" -lt 2 ]; then
    echo "interop: FAIL: Go did not fall back to the full tiles: $(cat "$work/tiles-out")" >&2
    exit 1
fi

# Flips byte $2 of file $1 (the low bit, so the length stays).
flip_byte() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# Go must reject (exit 1) a copy of the published log altered by the command $2 run in
# the copy (none if empty), given the -prev arguments after it.
tiles_rejected=0
expect_tiles_rejected() {
    local what=$1 alter=$2 rc=0
    shift 2
    rm -rf "$work/bad-pub" && cp -r "$pub" "$work/bad-pub"
    if [ -n "$alter" ]; then (cd "$work/bad-pub" && eval "$alter"); fi
    if [ -n "$alter" ] && diff -rq "$pub" "$work/bad-pub" >/dev/null; then
        echo "interop: FAIL: could not alter the published log for the $what" >&2
        exit 1
    fi
    "$work/interop" -vkey "$work/key.pub" -tiles "$work/bad-pub" "$@" >/dev/null 2>"$work/err" || rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "interop: FAIL: Go did not reject the published log with a $what (exit $rc)" >&2
        cat "$work/err" >&2
        exit 1
    fi
    tiles_rejected=$((tiles_rejected + 1))
}
expect_tiles_rejected "flipped byte in a full leaf tile" "flip_byte tile/0/000 100"
expect_tiles_rejected "flipped byte in a full level-1 tile" "flip_byte tile/1/000 4000"
# Byte 50 of the bundle is inside entry 0 (after its 2-byte length).
expect_tiles_rejected "flipped byte in an entry" "flip_byte tile/entries/000 50"
expect_tiles_rejected "flipped byte in the last entry" "flip_byte tile/entries/257.p/44 $((44 * 88 - 1))"
expect_tiles_rejected "flipped byte in the partial leaf tile" "flip_byte tile/0/257.p/44 1000"
expect_tiles_rejected "flipped byte in the partial level-2 tile" "flip_byte tile/2/000.p/1 7"
expect_tiles_rejected "flipped byte in an outgrown partial tile" \
    "flip_byte tile/0/001.p/44 33" -prev "$work/checkpoint-300"
# Entry 3 altered and its leaf hash in tile/0/000 made to match: only tile/1/000 (and the
# root) disagree, which Go's TileHashReader does not check for every tile it returns.
rehash_entry3='python3 -c "
import hashlib
b = bytearray(open(\"tile/entries/000\", \"rb\").read())
off = 3 * 88
b[off + 40] ^= 1
open(\"tile/entries/000\", \"wb\").write(b)
t = bytearray(open(\"tile/0/000\", \"rb\").read())
t[3 * 32:4 * 32] = hashlib.sha256(b\"\\0\" + bytes(b[off + 2:off + 88])).digest()
open(\"tile/0/000\", \"wb\").write(t)
"'
expect_tiles_rejected "entry and its leaf hash altered together" "$rehash_entry3"
expect_tiles_rejected "truncated full tile" "truncate -s -32 tile/0/100"
expect_tiles_rejected "missing partial tile" "rm tile/1/001.p/1"
expect_tiles_rejected "checkpoint with a flipped signature byte" \
    "flip_byte checkpoint $(($(wc -c <"$pub/checkpoint") - 10))"
# An earlier checkpoint of the same ledger (same origin, same key) with another record
# 300: a fork of the log at 301 records.
echo "a forked event" | "$chainlog" append "$work/fork" >/dev/null
"$chainlog" checkpoint "$work/fork" --key "$work/key.key" >"$work/fork-checkpoint"
expect_tiles_rejected "forked earlier checkpoint" "" -prev "$work/fork-checkpoint"
if ! grep -q "root at 301 is not the earlier checkpoint's" "$work/err"; then
    echo "interop: FAIL: Go rejected the fork for another reason: $(cat "$work/err")" >&2
    exit 1
fi

echo "interop: $inclusion inclusion, $consistency consistency, 1 checkpoint verified by Go;" \
    "$rejected tampered inputs rejected"
echo "interop: tiles: $publishes publishes read by Go's tlog.TileHashReader;" \
    "$tiles_inclusion inclusion, $tiles_consistency consistency;" \
    "$tiles_rejected tampered logs rejected"
