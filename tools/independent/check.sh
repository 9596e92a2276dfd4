#!/usr/bin/env bash
# Drive a built chainlog binary and check its exports with the independent verifier
# (tools/independent/verify_export.py, written from docs/FORMAT.md alone).
#
#   tools/independent/check.sh path/to/chainlog
#
# Builds BLAKE3 and SHA-256 ledgers, exports them (whole, a range, signed, unsigned,
# with --redact, after a `redact`), expects every export to verify (exit 0), then
# expects every tampered copy to be rejected (exit 1).  Exits non-zero on any
# unexpected outcome.
set -u

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 PATH_TO_CHAINLOG_BINARY" >&2
    exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
VERIFY="$HERE/verify_export.py"
PY=${PYTHON:-python3}

python_has() { "$PY" -c "import $1" >/dev/null 2>&1; }
python_has blake3 || "$PY" -m pip install -q blake3 >/dev/null 2>&1 || true
python_has cryptography || "$PY" -m pip install -q cryptography >/dev/null 2>&1 || true
if ! python_has blake3; then
    echo "check.sh: the Python package blake3 is missing and could not be installed" >&2
    exit 2
fi
# (without `cryptography` the verifier falls back to its built-in RFC 8032 Ed25519 verify)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chainlog-independent.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

FAILURES=0
VERIFIED=0
REJECTED=0
fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }

run() {  # run a chainlog command, failing the check if it fails
    if ! out=$("$BIN" "$@" 2>&1); then
        fail "chainlog $* failed: $out"
        return 1
    fi
    printf '%s\n' "$out"
}

# expect_ok FILE EXPECTED_ROOT EXPECTED_REDACTED[/UNRECORDED] [verifier args...]
expect_ok() {
    local red_spec=$3
    local file=$1 root=$2 red=${3%%/*} unrec='*'; shift 3
    case $red_spec in */*) unrec=${red_spec##*/} ;; esac
    local out rc
    out=$("$PY" "$VERIFY" "$file" "$@" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then
        fail "$(basename "$file") $*: expected exit 0, got $rc: $out"; return
    fi
    case $out in
        "OK "*" records, $red redacted ("$unrec" unrecorded), root $root") VERIFIED=$((VERIFIED + 1)) ;;
        *) fail "$(basename "$file") $*: unexpected output '$out' (want $red redacted, $unrec unrecorded, root $root)" ;;
    esac
    # chainlog's own verifier must accept it too, with the same counts
    local cargs=() a
    for a in "$@"; do [ "$a" = --trusted ] && a=--checkpoint; cargs+=("$a"); done
    local cj
    cj=$("$BIN" verify-export "$file" --json "${cargs[@]}" 2>&1) \
        || fail "$(basename "$file") $*: chainlog verify-export rejects what the independent verifier accepts: ${cj:0:300}"
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["ok"] is True and d["root"]==sys.argv[2] and d["redacted"]==int(sys.argv[3]) and (sys.argv[4]=="*" or d["unrecorded_redactions"]==int(sys.argv[4]))' \
        "$cj" "$root" "$red" "$unrec" 2>/dev/null || fail "$(basename "$file"): chainlog disagrees: ${cj:0:300}"
    # the JSON form must agree
    local js
    js=$("$PY" "$VERIFY" "$file" "$@" --json 2>&1) || { fail "--json run failed: $js"; return; }
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["ok"] is True and d["root"]==sys.argv[2] and d["redacted"]==int(sys.argv[3]) and d["tree_size"]==d["from"]+d["records"]' \
        "$js" "$root" "$red" 2>/dev/null || fail "$(basename "$file"): bad JSON output: $js"
}

# expect_broken FILE LABEL [verifier args...]: both verifiers reject the file; unless
# trusted checkpoints are involved (reported apart from breaks), with the same break kind,
# record and byte offset (docs/FORMAT.md, "Verifying an export").
expect_broken() {
    local file=$1 label=$2; shift 2
    local out rc
    out=$("$PY" "$VERIFY" "$file" "$@" 2>&1); rc=$?
    if [ $rc -ne 1 ]; then
        fail "$label: expected exit 1, got $rc: $out"; return
    fi
    case $out in
        "BROKEN "*" at record "*" (byte "*"): "*) REJECTED=$((REJECTED + 1)); echo "  rejected $label: ${out:0:110}" ;;
        *) fail "$label: exit 1 but unexpected output: $out"; return ;;
    esac
    local cargs=() a trusted=0
    for a in "$@"; do
        [ "$a" = --trusted ] && { a=--checkpoint; trusted=1; }
        cargs+=("$a")
    done
    local cj crc
    cj=$("$BIN" verify-export "$file" --json "${cargs[@]}" 2>/dev/null); crc=$?
    if [ $crc -ne 1 ]; then
        fail "$label: chainlog verify-export exits $crc on what the independent verifier rejects: ${cj:0:200}"
        return
    fi
    [ $trusted = 1 ] && return
    local pj
    pj=$("$PY" "$VERIFY" "$file" "$@" --json 2>&1)
    "$PY" -c 'import json,sys
c=json.loads(sys.argv[1])["first_break"]; p=json.loads(sys.argv[2])
assert (c["kind"], c["seq"], c.get("offset")) == (p["kind"], p["record"], p["offset"]), (c, p)' \
        "$cj" "$pj" 2>/dev/null \
        || fail "$label: the verifiers disagree on the break: chainlog ${cj:0:300} / independent ${pj:0:300}"
}

# Build a ledger: NREC payloads in several append batches, mixing text, empty and
# non-UTF-8 payloads.
build_ledger() {
    local dir=$1 alg=$2 nrec=$3 i batch
    run init "$dir" --hash "$alg" >/dev/null || return 1
    i=0
    while [ $i -lt "$nrec" ]; do
        batch=()
        for _ in $(seq 1 37); do
            [ $i -ge "$nrec" ] && break
            case $((i % 7)) in
                0) batch+=("") ;;                                        # empty payload
                1) batch+=("$(printf '\xff\xfe\x80 raw %d \x01\x7f' "$i")") ;;  # not UTF-8
                2) batch+=("$(printf '\xc3\x28\xa0\xa1')") ;;            # invalid UTF-8 sequence
                3) batch+=("$(head -c 3000 /dev/zero | tr '\0' 'x')-$i") ;;  # larger payload
                *) batch+=("event $i: user=u$((i % 13)) action=login ok") ;;
            esac
            i=$((i + 1))
        done
        run append "$dir" -- "${batch[@]}" >/dev/null || return 1
    done
}

root_of() { sed -n 's/^root[[:space:]]*\([0-9a-f]\{64\}\)$/\1/p' <<<"$1"; }

# Tampering helper: writes tampered copies of an export, one per line "label<TAB>path".
TAMPER_PY=$(cat <<'PY'
import struct, sys, zlib
src, outdir, signed = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
d = bytearray(open(src, "rb").read())
frm, count = struct.unpack_from(">QQ", d, 26)
k = bin(frm).count("1")
tz = (frm & -frm).bit_length() - 1 if frm else 0
eoff = 42 + 32 * k                      # the predecessor entry, when frm > 0
hlen = 46 + 32 * k + (86 + 32 * tz if frm else 0)
off, frames = hlen, []
for _ in range(count):
    n = struct.unpack_from(">I", d, off)[0]
    frames.append((off, n)); off += n
toff = off
note_len = struct.unpack_from(">I", d, toff + 88)[0]
tend = toff + 92 + note_len
assert tend + 4 == len(d), "helper could not walk the export"
out = []
def emit(label, data):
    p = "%s/%s" % (outdir, label)
    open(p, "wb").write(bytes(data)); out.append((label, p))
def flip(pos, mask=0x01):
    c = bytearray(d); c[pos] ^= mask; return c
def refix_frame(c, fo, fl):
    struct.pack_into(">I", c, fo + fl - 4, zlib.crc32(bytes(c[fo:fo + fl - 4])))
def refix_trailer(c):
    struct.pack_into(">I", c, tend, zlib.crc32(bytes(c[toff:tend])))
def refix_header(c):
    struct.pack_into(">I", c, hlen - 4, zlib.crc32(bytes(c[:hlen - 4])))
# the five plain tampers
emit("header-byte", flip(12))                       # in the ledger id
if frames:
    fo, fl = frames[len(frames) // 2]
    emit("frame-byte", flip(fo + 30))                # in the entry's timestamp / prev_hash
emit("trailer-byte", flip(toff + 60))               # in the root
emit("truncated", d[:-1])
emit("truncated-mid", d[: len(d) // 2])
emit("appended-byte", d + b"\x00")
# CRC-fixed tampers: only the cryptographic checks can catch these
if frames:
    fo, fl = frames[-1]
    c = flip(fo + 4 + 10 + 7); refix_frame(c, fo, fl); emit("fixedcrc-timestamp", c)
    c = flip(fo + 4 + 0, 0x02); refix_frame(c, fo, fl); emit("fixedcrc-kind", c)  # kind 0x03: reserved
    body = [(o, n) for (o, n) in frames if n > 127 and d[o + 122] == 0]
    if body:
        o, n = body[0]
        c = flip(o + 123); refix_frame(c, o, n); emit("fixedcrc-salt", c)       # -> payload_mismatch
    if len(frames) >= 2:
        # drop a frame (fix counts) -> link/sequence break
        o, n = frames[0]
        c = bytearray(d[:o] + d[o + n:])
        struct.pack_into(">Q", c, 34, count - 1); refix_header(c)
        t = toff - n
        struct.pack_into(">Q", c, t + 8, count - 1); struct.pack_into(">I", c, t + 92 + note_len,
            zlib.crc32(bytes(c[t:t + 92 + note_len]))); emit("fixedcrc-dropped-frame", c)
    # redact a frame by hand (legal) but then change its stored hash -> hash_mismatch
    o, n = frames[len(frames) // 3]
    c = flip(o + 90 + 5); refix_frame(c, o, n); emit("fixedcrc-record-hash", c)
c = flip(toff + 56); refix_trailer(c); emit("fixedcrc-root", c)
if frm > 0:
    c = flip(42); refix_header(c); emit("fixedcrc-frontier", c)
    # the predecessor's timestamp set to 0, and its hash replaced (with the trailer's
    # last hash when the range is empty): the tree covers the entry, so both break
    c = bytearray(d); c[eoff + 10:eoff + 18] = bytes(8); refix_header(c)
    emit("fixedcrc-prev-ts-zero", c)
    c = flip(eoff + 18 + 3); refix_header(c)
    if count == 0:
        c[toff + 16:toff + 48] = bytes([0x5a]) * 32; refix_trailer(c)
    emit("fixedcrc-prev-hash", c)
if signed and note_len:
    c = flip(tend - 10, 0x04); refix_trailer(c); emit("fixedcrc-signature", c)
for label, p in out:
    print("%s\t%s" % (label, p))
PY
)

tamper_all() {  # tamper_all EXPORT NAME SIGNED [verifier args...]
    local src=$1 name=$2 signed=$3; shift 3
    local dir="$WORK/tampered-$name" label path
    mkdir -p "$dir"
    while IFS=$'\t' read -r label path; do
        expect_broken "$path" "$name/$label" "$@"
    done < <("$PY" -c "$TAMPER_PY" "$src" "$dir" "$signed" || echo "helper-failed	/nonexistent")
}

EXPORTS=()   # "path|root|redacted|signed"
export_one() {  # export_one DIR OUT EXPECTED_REDACTED SIGNED [export args...]
    local dir=$1 out=$2 red=$3 signed=$4; shift 4
    local o
    o=$(run export "$dir" "$out" "$@") || return
    local r; r=$(root_of "$o")
    [ -n "$r" ] || { fail "no root in export output: $o"; return; }
    EXPORTS+=("$out|$r|$red|$signed")
}

for alg in blake3 sha256; do
    L="$WORK/ledger-$alg"
    build_ledger "$L" "$alg" 300 || continue
    run keygen "signer-$alg" --out "$WORK/key-$alg" >/dev/null || continue
    KEY="$WORK/key-$alg.key"
    export_one "$L" "$WORK/$alg-whole.clx" 0 0
    export_one "$L" "$WORK/$alg-whole-signed.clx" 0 1 --key "$KEY"
    export_one "$L" "$WORK/$alg-range.clx" 0 0 --from 100 --to 250
    export_one "$L" "$WORK/$alg-range-signed.clx" 0 1 --from 100 --to 250 --key "$KEY"
    export_one "$L" "$WORK/$alg-empty-range.clx" 0 0 --from 128 --to 128
    export_one "$L" "$WORK/$alg-export-redact.clx" 3/3 1 --key "$KEY" --redact 5,17,42
    export_one "$L" "$WORK/$alg-empty-range-signed.clx" 0 1 --from 7 --to 7 --key "$KEY"
    export_one "$L" "$WORK/$alg-range-even-signed.clx" 0 1 --from 96 --key "$KEY"
    # a trusted checkpoint at size 300, then more records, a redaction in the store
    run checkpoint "$L" --key "$KEY" >"$WORK/$alg-checkpoint.txt" 2>/dev/null \
        || fail "chainlog checkpoint failed"
    run redact "$L" 7 --reason "gdpr request" >/dev/null
    run redact "$L" 1 --reason "non-utf8 secret" >/dev/null
    run append "$L" "after redaction" "" >/dev/null
    # records 1 and 7 are redacted in the store; the range below also leaves out 250
    export_one "$L" "$WORK/$alg-after-redact.clx" 2/0 1 --key "$KEY"
    export_one "$L" "$WORK/$alg-after-redact-range.clx" 2/1 1 --from 3 --key "$KEY" --redact 250
    export_one "$L" "$WORK/$alg-after-redact-tail.clx" 0/0 1 --from 300 --key "$KEY"
done

# record kinds: an ordinary record whose payload reads like a redaction record (exactly
# as `redact` writes one, or with an uppercase hash) names nothing, and can itself be
# redacted; only the record `redact` appends (kind 0x02) names a record
K="$WORK/ledger-kinds"
if run init "$K" >/dev/null && run append "$K" f0 f1 >/dev/null; then
    h0=$("$BIN" get "$K" 0 --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
    H0=$(printf '%s' "$h0" | tr 'a-f' 'A-F')
    run append "$K" "chainlog-redaction/1 seq=0 hash=$h0 reason=x" \
        "chainlog-redaction/1 seq=0 hash=$H0 reason=x" >/dev/null
    export_one "$K" "$WORK/kinds-lookalike.clx" 1/1 0 --redact 0
    run redact "$K" 2 --reason "it was only text" >/dev/null
    export_one "$K" "$WORK/kinds-after-redact.clx" 1/0 0
    export_one "$K" "$WORK/kinds-after-redact-more.clx" 2/1 0 --redact 0
fi

for e in "${EXPORTS[@]}"; do
    IFS='|' read -r path root red signed <<<"$e"
    alg=${path##*/}; alg=${alg%%-*}
    pub="$WORK/key-$alg.pub"
    expect_ok "$path" "$root" "$red"
    if [ "$signed" = 1 ]; then
        expect_ok "$path" "$root" "$red" --pub "$pub"
    fi
done

# consistency with a trusted earlier checkpoint (FORMAT.md step 5)
for alg in blake3 sha256; do
    pub="$WORK/key-$alg.pub"; cp="$WORK/$alg-checkpoint.txt"
    [ -s "$cp" ] || continue
    for e in "${EXPORTS[@]}"; do
        IFS='|' read -r path root red signed <<<"$e"
        case $path in
            */$alg-after-redact.clx|*/$alg-after-redact-range.clx|*/$alg-range-even-signed.clx)
                expect_ok "$path" "$root" "$red" --pub "$pub" --trusted "$cp" ;;
            */$alg-after-redact-tail.clx)   # from = 300 = the checkpoint's size: the frontier
                expect_ok "$path" "$root" "$red" --pub "$pub" --trusted "$cp" ;;
            */$alg-range-signed.clx)   # size 250 < checkpoint's 300: truncated relative to it
                expect_broken "$path" "$alg/range-vs-newer-checkpoint" --pub "$pub" --trusted "$cp" ;;
            */$alg-empty-range-signed.clx)
                expect_broken "$path" "$alg/empty-range-vs-newer-checkpoint" --pub "$pub" --trusted "$cp" ;;
        esac
    done
done

echo "tampered copies:"
for e in "${EXPORTS[@]}"; do
    IFS='|' read -r path root red signed <<<"$e"
    name=$(basename "$path" .clx)
    alg=${name%%-*}
    if [ "$signed" = 1 ]; then
        tamper_all "$path" "$name" 1 --pub "$WORK/key-$alg.pub"
    else
        tamper_all "$path" "$name" 0
    fi
done
# a signature by another key must not verify
if [ -f "$WORK/blake3-whole-signed.clx" ] && [ -f "$WORK/key-sha256.pub" ]; then
    expect_broken "$WORK/blake3-whole-signed.clx" "blake3-whole-signed/wrong-key" --pub "$WORK/key-sha256.pub"
fi

# malformed checkpoint notes: rejected with and without a key, by both verifiers alike
NOTES_PY=$(cat <<'PY'
import struct, sys, zlib
src, outdir = sys.argv[1], sys.argv[2]
d = open(src, "rb").read()
t = max(i for i in range(len(d) - 95) if d[i:i + 8] == b"CLTRAILR"
        and struct.unpack_from(">I", d, i + 88)[0] + 96 == len(d) - i)
n = struct.unpack_from(">I", d, t + 88)[0]
note = d[t + 92:t + 92 + n].decode()
body, sig = note[:-1].rsplit("\n\n", 1)
body += "\n"
name, b64 = sig[2:].split(" ", 1)
cases = {
    "no-signature-line": body,
    "blank-line-only": body + "\n",
    "hyphen-for-em-dash": body + "\n- %s %s\n" % (name, b64),
    "bad-base64": body + "\n\u2014 %s %s\n" % (name, b64[1:]),
    "unpadded-base64": body + "\n\u2014 %s %s\n" % (name, b64.rstrip("=")),
    "carriage-return": body + "\n%s\r\n" % sig,
    "tab-in-text": body[:-1] + "\t\n\n%s\n" % sig,
    "plus-in-key-name": body + "\n\u2014 %s+x %s\n" % (name, b64),
    "no-final-newline": body + "\n" + sig,
    "two-spaces": body + "\n\u2014 %s  %s\n" % (name, b64),
    "101-signatures": body + "\n" + ("%s\n" % sig) * 101,
}
for label, text in cases.items():
    raw = text.encode()
    c = bytearray(d[:t + 88]) + struct.pack(">I", len(raw)) + raw
    c += struct.pack(">I", zlib.crc32(bytes(c[t:])))
    p = "%s/%s" % (outdir, label)
    open(p, "wb").write(bytes(c))
    print("%s\t%s" % (label, p))
PY
)
for alg in blake3 sha256; do
    src="$WORK/$alg-range-signed.clx"
    [ -f "$src" ] || continue
    dir="$WORK/notes-$alg"; mkdir -p "$dir"
    while IFS=$'\t' read -r label path; do
        expect_broken "$path" "$alg-note/$label"
        expect_broken "$path" "$alg-note/$label+pub" --pub "$WORK/key-$alg.pub"
    done < <("$PY" -c "$NOTES_PY" "$src" "$dir" || echo "helper-failed	/nonexistent")
done

# every single-byte flip of a small export must be rejected, without a traceback
if [ -f "$WORK/blake3-after-redact-range.clx" ]; then
    sweep=$("$PY" - "$VERIFY" "$WORK/blake3-after-redact-range.clx" <<'PY'
import importlib.util, io, random, sys
sys.dont_write_bytecode = True
spec = importlib.util.spec_from_file_location("v", sys.argv[1]); v = importlib.util.module_from_spec(spec)
spec.loader.exec_module(v)
d = open(sys.argv[2], "rb").read()
v.verify(io.BytesIO(d))
rng = random.Random(1)
positions = sorted(set(list(range(0, 200)) + list(range(len(d) - 400, len(d))) + rng.sample(range(len(d)), 600)))
missed = 0
for pos in positions:
    c = bytearray(d); c[pos] ^= 1 << rng.randrange(8)
    try:
        v.verify(io.BytesIO(bytes(c))); missed += 1; print("missed flip at", pos, file=sys.stderr)
    except v.Break:
        pass
print(len(positions) - missed, len(positions))
PY
) || fail "byte-flip sweep crashed"
    read -r caught total <<<"$sweep"
    if [ -n "${total:-}" ] && [ "$caught" = "$total" ]; then
        echo "byte-flip sweep: $caught/$total single-bit flips rejected"
    else
        fail "byte-flip sweep: $sweep"
    fi
fi

echo "independent verifier: $VERIFIED exports verified, $REJECTED tampered copies rejected"
if [ "$FAILURES" -ne 0 ]; then
    echo "$FAILURES unexpected outcome(s)" >&2
    exit 1
fi
exit 0
