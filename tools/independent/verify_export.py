#!/usr/bin/env python3
"""Independent verifier for chainlog export files.

Written from docs/FORMAT.md alone (no chainlog source consulted).

    verify_export.py FILE [--pub VERIFIER_KEY_FILE] [--trusted CHECKPOINT_FILE] [--json]

Exit 0: the export verifies.  Exit 1: the first break found is reported as
``BROKEN <kind> at record <n> (byte <offset>): <detail>``.  Exit 2: usage error
(bad arguments, unreadable FILE / key file, missing dependency).

The file is streamed: memory use is bounded by one 1 MiB read buffer, the
≤ 1 MiB checkpoint note and a ≤ 64-hash Merkle frontier, whatever the number of
records.
"""

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys
import zlib

# ---------------------------------------------------------------- constants

VERSION = 0x01
ALG_BLAKE3 = 0x01
ALG_SHA256 = 0x02
ALG_NAMES = {ALG_BLAKE3: "blake3", ALG_SHA256: "sha256"}

TAG_LEAF = b"\x00"
TAG_NODE = b"\x01"
TAG_COMMIT = b"\x02"
TAG_GENESIS = b"\x03"
GENESIS_LABEL = b"chainlog genesis"

ENTRY_LEN = 86
HASH_LEN = 32
SALT_LEN = 32
MAX_PAYLOAD = 16 * 1024 * 1024           # 16 MiB
FRAME_FIXED_BODY = 159                   # frame_len = 159 + n with body
FRAME_REDACTED = 127                     # frame_len of a redacted frame
FRAME_MAX = FRAME_FIXED_BODY + MAX_PAYLOAD
FRAME_HEAD = 4 + ENTRY_LEN + HASH_LEN + 1   # frame_len, entry, record_hash, body_tag = 123

HEADER_MAGIC = b"CLEXPORT"
HEADER_FIXED = 82
TRAILER_MAGIC = b"CLTRAILR"
TRAILER_FIXED = 92
MAX_NOTE = 1024 * 1024                   # 1 MiB

CHUNK = 1 << 20
EM_DASH_PREFIX = "\u2014 "

# ---------------------------------------------------------------- errors


class Break(Exception):
    """A verification failure: kind, record number, byte offset, detail."""

    def __init__(self, kind, record, offset, detail):
        super().__init__(detail)
        self.kind = kind
        self.record = record
        self.offset = offset
        self.detail = detail


class UsageError(Exception):
    pass


# ---------------------------------------------------------------- hashing


def hasher_factory(alg):
    if alg == ALG_SHA256:
        return hashlib.sha256
    if alg == ALG_BLAKE3:
        try:
            import blake3  # noqa: PLC0415
        except ImportError as e:  # pragma: no cover
            raise UsageError("the 'blake3' package is required for BLAKE3 ledgers "
                             "(pip install blake3)") from e
        return blake3.blake3
    raise ValueError("unknown algorithm")


class Hash:
    def __init__(self, alg):
        self.alg = alg
        self.new = hasher_factory(alg)

    def __call__(self, *parts):
        h = self.new()
        for p in parts:
            h.update(p)
        return h.digest()

    def node(self, left, right):
        return self(TAG_NODE, left, right)


class Tree:
    """RFC 9162 Merkle tree right edge (frontier, largest subtree first)."""

    def __init__(self, H, frontier, size):
        self.H = H
        self.frontier = list(frontier)
        self.size = size

    def append(self, leaf):
        h = leaf
        s = self.size
        while s & 1:
            h = self.H.node(self.frontier.pop(), h)
            s >>= 1
        self.frontier.append(h)
        self.size += 1

    def root(self):
        if not self.frontier:
            return self.H()
        r = self.frontier[-1]
        for f in reversed(self.frontier[:-1]):
            r = self.H.node(f, r)
        return r


# ---------------------------------------------------------------- Ed25519 (RFC 8032 verify)


def _ed25519_verify_pure(pub, msg, sig):
    p = 2 ** 255 - 19
    L = 2 ** 252 + 27742317777372353535851937790883648493
    d = (-121665 * pow(121666, p - 2, p)) % p
    sqrt_m1 = pow(2, (p - 1) // 4, p)

    def inv(x):
        return pow(x, p - 2, p)

    def add(P, Q):
        x1, y1, z1, t1 = P
        x2, y2, z2, t2 = Q
        A = (y1 - x1) * (y2 - x2) % p
        B = (y1 + x1) * (y2 + x2) % p
        C = 2 * t1 * t2 * d % p
        D = 2 * z1 * z2 % p
        E, F, G, Hh = B - A, D - C, D + C, B + A
        return (E * F % p, G * Hh % p, F * G % p, E * Hh % p)

    def mul(s, P):
        Q = (0, 1, 1, 0)
        while s > 0:
            if s & 1:
                Q = add(Q, P)
            P = add(P, P)
            s >>= 1
        return Q

    def equal(P, Q):
        x1, y1, z1, _ = P
        x2, y2, z2, _ = Q
        return (x1 * z2 - x2 * z1) % p == 0 and (y1 * z2 - y2 * z1) % p == 0

    def decompress(b):
        if len(b) != 32:
            return None
        y = int.from_bytes(b, "little")
        sign = y >> 255
        y &= (1 << 255) - 1
        if y >= p:
            return None
        x2 = (y * y - 1) * inv(d * y * y + 1) % p
        if x2 == 0:
            if sign:
                return None
            x = 0
        else:
            x = pow(x2, (p + 3) // 8, p)
            if (x * x - x2) % p != 0:
                x = x * sqrt_m1 % p
            if (x * x - x2) % p != 0:
                return None
            if (x & 1) != sign:
                x = p - x
        return (x, y, 1, x * y % p)

    gy = 4 * inv(5) % p
    G = decompress(gy.to_bytes(32, "little"))
    if len(sig) != 64:
        return False
    A = decompress(pub)
    R = decompress(sig[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    return equal(mul(s, G), add(R, mul(k, A)))


def ed25519_verify(pub, msg, sig):
    try:
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
            Ed25519PublicKey,
        )
    except ImportError:
        return _ed25519_verify_pure(pub, msg, sig)
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


# ---------------------------------------------------------------- keys and notes


def key_id(name, pub):
    return hashlib.sha256(name.encode("utf-8") + b"\x0a\x01" + pub).digest()[:4]


def valid_key_name(name):
    return (bool(name) and "+" not in name
            and not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in name))


def std_b64decode(s):
    """Strict standard base64 (with padding); None when not canonical."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if base64.b64encode(raw).decode("ascii") != s:
        return None
    return raw


def parse_verifier_key(text):
    """`<name>+<key id, 8 hex>+<base64(0x01 ‖ 32-byte public key)>` -> (name, id, pub)."""
    text = text.strip()
    parts = text.split("+", 2)  # the name has no '+'; the base64 key may
    if len(parts) != 3:
        raise UsageError("verifier key must be <name>+<8 hex>+<base64>")
    name, hexid, b64 = parts
    if not valid_key_name(name):
        raise UsageError("verifier key has an invalid name")
    if len(hexid) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hexid):
        raise UsageError("verifier key id is not 8 hex digits")
    raw = std_b64decode(b64)
    if raw is None or len(raw) != 33 or raw[0] != 0x01:
        raise UsageError("verifier key is not base64(0x01 ‖ 32-byte Ed25519 key)")
    pub = raw[1:]
    kid = bytes.fromhex(hexid)
    if key_id(name, pub) != kid:
        raise UsageError("verifier key id %s does not match SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)"
                         % hexid.lower())
    return name, kid, pub


class NoteError(Exception):
    pass


def parse_signed_note(data):
    """C2SP signed-note -> (body text, [(name, raw signature bytes)])."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None
    if any((ord(c) < 0x20 and c != "\n") or ord(c) == 0x7f for c in text):
        raise NoteError("note contains a control character other than newline")
    if not text.endswith("\n"):
        raise NoteError("note does not end with a newline")
    i = text.rfind("\n\n")
    if i < 0:
        raise NoteError("note has no blank line before its signatures")
    body = text[: i + 1]
    sig_block = text[i + 2:]
    if not sig_block:
        raise NoteError("note has no signature lines")
    sigs = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(EM_DASH_PREFIX):
            raise NoteError("signature line does not start with '\u2014 ': %r" % line[:80])
        rest = line[len(EM_DASH_PREFIX):]
        sp = rest.find(" ")
        if sp < 0:
            raise NoteError("signature line has no space after the key name")
        name, b64 = rest[:sp], rest[sp + 1:]
        if not valid_key_name(name):
            raise NoteError("signature line has an invalid key name %r" % name)
        raw = std_b64decode(b64)
        if raw is None or len(raw) < 5:
            raise NoteError("signature of key %r is not valid base64 of key id ‖ signature" % name)
        sigs.append((name, raw))
    return body, sigs


def parse_checkpoint(body):
    """C2SP tlog-checkpoint body -> (origin, size, root bytes)."""
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint body has fewer than 3 lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not origin:
        raise NoteError("checkpoint origin line is empty")
    if not size_s or not size_s.isascii() or not size_s.isdigit() or \
            (len(size_s) > 1 and size_s[0] == "0"):
        raise NoteError("checkpoint tree size %r is not a decimal without leading zeros"
                        % size_s[:40])
    size = int(size_s)
    if size >= 1 << 64:
        raise NoteError("checkpoint tree size does not fit in 64 bits")
    root = std_b64decode(root_s)
    if root is None:
        raise NoteError("checkpoint root hash is not standard base64")
    for ext in lines[3:]:
        if not ext:
            raise NoteError("checkpoint has an empty extension line")
    return origin, size, root


def check_signature(body, sigs, key):
    """Return None when a signature by `key` verifies, else a reason."""
    name, kid, pub = key
    found = False
    for sname, raw in sigs:
        if sname != name or raw[:4] != kid:
            continue  # C2SP: signatures by unknown keys are ignored
        found = True
        if len(raw) == 4 + 64 and ed25519_verify(pub, body.encode("utf-8"), raw[4:]):
            return None
    if not found:
        return "no signature by key %s+%s" % (name, kid.hex())
    return "signature by key %s+%s does not verify" % (name, kid.hex())


# ---------------------------------------------------------------- streaming reader


class Reader:
    def __init__(self, f):
        self.f = f
        self.pos = 0

    def read(self, n, record, what):
        """Read exactly n bytes or raise a `truncated` break."""
        start = self.pos
        out = bytearray()
        while len(out) < n:
            chunk = self.f.read(min(n - len(out), CHUNK))
            if not chunk:
                raise Break("truncated", record, start,
                            "file ends %d bytes into %s (%d bytes needed)" % (len(out), what, n))
            out += chunk
        self.pos += n
        return bytes(out)


def u64(b, o):
    return struct.unpack_from(">Q", b, o)[0]


def u32(b, o):
    return struct.unpack_from(">I", b, o)[0]


# ---------------------------------------------------------------- verification


def verify(f, key=None, trusted=None):
    r = Reader(f)

    # ---- header
    head = r.read(HEADER_FIXED, 0, "the header")
    frm = u64(head, 26)
    count = u64(head, 34)
    rec = frm
    if head[0:8] != HEADER_MAGIC:
        raise Break("malformed", 0, 0, "header magic is %r, not %r" % (head[0:8], HEADER_MAGIC))
    if head[8] != VERSION:
        raise Break("malformed", rec, 8, "header version is 0x%02x, not 0x01" % head[8])
    alg = head[9]
    if alg not in ALG_NAMES:
        raise Break("malformed", rec, 9, "header algorithm 0x%02x is unknown" % alg)
    ledger = head[10:26]
    prev_hash = head[42:74]
    prev_ts = u64(head, 74)
    k = bin(frm).count("1")
    rest = r.read(HASH_LEN * k + 4, rec, "the header frontier and CRC (popcount(from) = %d)" % k)
    crc_off = HEADER_FIXED + HASH_LEN * k
    stored_crc = u32(rest, HASH_LEN * k)
    if zlib.crc32(head + rest[: HASH_LEN * k]) != stored_crc:
        raise Break("corrupt", rec, crc_off, "header CRC mismatch")
    frontier = [rest[i * HASH_LEN:(i + 1) * HASH_LEN] for i in range(k)]

    H = Hash(alg)
    genesis_prev = H(TAG_GENESIS, GENESIS_LABEL, bytes([alg]), ledger)
    if frm == 0:
        if prev_hash != genesis_prev:
            raise Break("genesis_mismatch", 0, 42,
                        "from = 0 but header prev_hash %s is not genesis_prev %s"
                        % (prev_hash.hex(), genesis_prev.hex()))
        if prev_ts != 0:
            raise Break("malformed", 0, 74, "from = 0 but header prev_ts is %d, not 0" % prev_ts)

    tree = Tree(H, frontier, frm)
    trusted_checked = False
    if trusted is not None:
        t_size, t_root = trusted
        if t_size < frm:
            raise Break("checkpoint_uncheckable", frm, 26,
                        "trusted checkpoint size %d is below the export's from %d" % (t_size, frm))
        if t_size == frm:
            if tree.root() != t_root:
                raise Break("checkpoint_inconsistent", frm, 82,
                            "header frontier root %s differs from the trusted checkpoint root %s"
                            % (tree.root().hex(), t_root.hex()))
            trusted_checked = True

    # ---- frames
    seq_expected = frm
    end = frm + count
    redacted = 0
    last_hash = prev_hash
    last_ts = prev_ts
    while seq_expected < end:
        rec = seq_expected
        off = r.pos
        lenb = r.read(4, rec, "frame_len of record %d" % rec)
        flen = u32(lenb, 0)
        if flen < FRAME_REDACTED or flen > FRAME_MAX:
            raise Break("malformed", rec, off,
                        "frame_len %d outside [%d, %d]" % (flen, FRAME_REDACTED, FRAME_MAX))
        fh = r.read(FRAME_HEAD - 4, rec, "frame of record %d (frame_len %d)" % (rec, flen))
        entry = fh[0:ENTRY_LEN]
        stored_hash = fh[ENTRY_LEN:ENTRY_LEN + HASH_LEN]
        body_tag = fh[ENTRY_LEN + HASH_LEN]
        e_ver, e_alg = entry[0], entry[1]
        e_seq = u64(entry, 2)
        e_ts = u64(entry, 10)
        e_prev = entry[18:50]
        e_commit = entry[50:82]
        e_plen = u32(entry, 82)
        if e_ver != VERSION:
            raise Break("malformed", rec, off + 4, "frame version 0x%02x, not 0x01" % e_ver)
        if e_alg not in ALG_NAMES:
            raise Break("malformed", rec, off + 5, "frame algorithm 0x%02x is unknown" % e_alg)
        if body_tag not in (0, 1):
            raise Break("malformed", rec, off + 122, "body_tag 0x%02x is neither 0x00 nor 0x01"
                        % body_tag)
        if e_plen > MAX_PAYLOAD:
            raise Break("malformed", rec, off + 86,
                        "payload_len %d exceeds 16 MiB" % e_plen)
        want_len = FRAME_FIXED_BODY + e_plen if body_tag == 0 else FRAME_REDACTED
        if flen != want_len:
            raise Break("malformed", rec, off,
                        "frame_len %d disagrees with body_tag %d and payload_len %d (expected %d)"
                        % (flen, body_tag, e_plen, want_len))
        crc = zlib.crc32(lenb)
        crc = zlib.crc32(fh, crc)
        commit = None
        if body_tag == 0:
            salt = r.read(SALT_LEN, rec, "salt of record %d" % rec)
            crc = zlib.crc32(salt, crc)
            ch = H.new()
            ch.update(TAG_COMMIT)
            ch.update(salt)
            left = e_plen
            while left:
                chunk = r.read(min(left, CHUNK), rec, "payload of record %d" % rec)
                crc = zlib.crc32(chunk, crc)
                ch.update(chunk)
                left -= len(chunk)
            commit = ch.digest()
        crcb = r.read(4, rec, "CRC of record %d" % rec)
        if crc != u32(crcb, 0):
            raise Break("corrupt", rec, off, "frame CRC mismatch (stored %08x, computed %08x)"
                        % (u32(crcb, 0), crc))
        if e_alg != alg:
            raise Break("wrong_algorithm", rec, off + 5,
                        "frame algorithm 0x%02x differs from the export's 0x%02x" % (e_alg, alg))
        rh = H(TAG_LEAF, entry)
        if rh != stored_hash:
            raise Break("hash_mismatch", rec, off + 90,
                        "stored record hash %s, H(0x00 ‖ entry) = %s"
                        % (stored_hash.hex(), rh.hex()))
        if e_seq != seq_expected:
            raise Break("sequence_gap", rec, off + 6,
                        "frame seq %d, expected %d" % (e_seq, seq_expected))
        if commit is not None and commit != e_commit:
            raise Break("payload_mismatch", rec, off + 123,
                        "salt and payload hash to %s, entry commits to %s"
                        % (commit.hex(), e_commit.hex()))
        if e_seq == 0 and e_prev != genesis_prev:
            raise Break("genesis_mismatch", rec, off + 22,
                        "record 0 prev_hash %s is not genesis_prev %s"
                        % (e_prev.hex(), genesis_prev.hex()))
        if e_seq != 0 and e_prev == genesis_prev:
            raise Break("duplicate_genesis", rec, off + 22,
                        "record %d carries the genesis predecessor" % e_seq)
        if e_prev != last_hash:
            raise Break("link_mismatch", rec, off + 22,
                        "prev_hash %s, previous record hash %s" % (e_prev.hex(), last_hash.hex()))
        if e_ts < last_ts:
            raise Break("timestamp_regression", rec, off + 14,
                        "timestamp %d earlier than previous %d" % (e_ts, last_ts))
        if body_tag == 1:
            redacted += 1
        tree.append(rh)
        last_hash = rh
        last_ts = e_ts
        seq_expected += 1
        if trusted is not None and not trusted_checked and tree.size == trusted[0]:
            if tree.root() != trusted[1]:
                raise Break("checkpoint_inconsistent", rec, off,
                            "root after record %d is %s, trusted checkpoint says %s"
                            % (rec, tree.root().hex(), trusted[1].hex()))
            trusted_checked = True

    # ---- trailer
    rec = end
    toff = r.pos
    t = r.read(TRAILER_FIXED, rec, "the trailer")
    if t[0:8] != TRAILER_MAGIC:
        raise Break("malformed", rec, toff,
                    "trailer magic is %r, not %r" % (t[0:8], TRAILER_MAGIC))
    note_len = u32(t, 88)
    if note_len > MAX_NOTE:
        raise Break("malformed", rec, toff + 88, "note_len %d exceeds 1 MiB" % note_len)
    note = r.read(note_len, rec, "the checkpoint note") if note_len else b""
    crcb = r.read(4, rec, "the trailer CRC")
    if zlib.crc32(note, zlib.crc32(t)) != u32(crcb, 0):
        raise Break("corrupt", rec, toff + TRAILER_FIXED + note_len, "trailer CRC mismatch")
    extra_off = r.pos
    extra = f.read(1)
    if extra:
        raise Break("trailing_bytes", rec, extra_off, "bytes follow the trailer")
    t_count = u64(t, 8)
    t_last = t[16:48]
    t_size = u64(t, 48)
    t_root = t[56:88]
    if t_count != count:
        raise Break("count_mismatch", rec, toff + 8,
                    "trailer count %d, header count %d" % (t_count, count))
    if t_last != last_hash:
        raise Break("last_hash_mismatch", rec, toff + 16,
                    "trailer last_hash %s, last record hash %s" % (t_last.hex(), last_hash.hex()))
    if t_size != tree.size:
        raise Break("tree_size_mismatch", rec, toff + 48,
                    "trailer tree_size %d, from + count = %d" % (t_size, tree.size))
    root = tree.root()
    if t_root != root:
        raise Break("tree_mismatch", rec, toff + 56,
                    "trailer root %s, computed root %s" % (t_root.hex(), root.hex()))

    # ---- checkpoint note
    checkpoint = "none"
    if note_len:
        noff = toff + TRAILER_FIXED
        try:
            body, sigs = parse_signed_note(note)
            origin, c_size, c_root = parse_checkpoint(body)
        except NoteError as e:
            raise Break("bad_checkpoint", rec, noff, str(e)) from None
        want_origin = "chainlog/" + ledger.hex()
        if origin != want_origin:
            raise Break("bad_checkpoint", rec, noff,
                        "checkpoint origin %r, expected %r" % (origin[:100], want_origin))
        if c_size != t_size:
            raise Break("bad_checkpoint", rec, noff,
                        "checkpoint tree size %d, export tree_size %d" % (c_size, t_size))
        if c_root != root:
            raise Break("bad_checkpoint", rec, noff,
                        "checkpoint root %s, export root %s" % (c_root.hex(), root.hex()))
        checkpoint = "unverified"
        if key is not None:
            why = check_signature(body, sigs, key)
            if why:
                raise Break("bad_signature", rec, noff, why)
            checkpoint = "verified"
    elif key is not None:
        raise Break("unsigned", rec, toff + 88,
                    "a verifier key was given but the export has no checkpoint note")

    if trusted is not None and not trusted_checked:
        raise Break("checkpoint_truncated", rec, toff,
                    "trusted checkpoint size %d is beyond the export's tree_size %d"
                    % (trusted[0], tree.size))

    return {
        "ok": True,
        "records": count,
        "redacted": redacted,
        "root": root.hex(),
        "tree_size": tree.size,
        "from": frm,
        "algorithm": ALG_NAMES[alg],
        "ledger": ledger.hex(),
        "checkpoint": checkpoint,
    }


def load_trusted(path, key):
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_NOTE + 1)
    except OSError as e:
        raise UsageError("cannot read trusted checkpoint %s: %s" % (path, e)) from None
    try:
        body, sigs = parse_signed_note(data)
        _origin, size, root = parse_checkpoint(body)
    except NoteError as e:
        raise UsageError("trusted checkpoint %s: %s" % (path, e)) from None
    why = check_signature(body, sigs, key)
    if why:
        raise UsageError("trusted checkpoint %s: %s" % (path, why))
    return size, root, _origin


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("%s: error: %s\n" % (self.prog, message))
        sys.exit(2)


def main(argv=None):
    ap = _Parser(prog="verify_export.py",
                 description="Verify a chainlog export file (written from docs/FORMAT.md alone).")
    ap.add_argument("file", metavar="FILE")
    ap.add_argument("--pub", metavar="VERIFIER_KEY_FILE",
                    help="verifier key file (<name>+<key id>+<base64 key>); the embedded "
                         "checkpoint must then carry a valid signature by it")
    ap.add_argument("--trusted", metavar="CHECKPOINT_FILE",
                    help="a trusted earlier signed checkpoint (needs --pub): the export must "
                         "be consistent with it (FORMAT.md, Verifying an export, step 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    try:
        key = None
        if args.pub is not None:
            try:
                with open(args.pub, "rb") as fh:
                    raw = fh.read(4096)
                text = raw.decode("utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError("cannot read verifier key %s: %s" % (args.pub, e)) from None
            key = parse_verifier_key(text)
        trusted = None
        if args.trusted is not None:
            if key is None:
                raise UsageError("--trusted needs --pub to check the checkpoint's signature")
            t_size, t_root, t_origin = load_trusted(args.trusted, key)
            trusted = (t_size, t_root)
        try:
            f = open(args.file, "rb")
        except OSError as e:
            raise UsageError("cannot open %s: %s" % (args.file, e)) from None
    except UsageError as e:
        sys.stderr.write("verify_export.py: error: %s\n" % e)
        return 2

    try:
        with f:
            try:
                result = verify(f, key, trusted)
                if trusted is not None:
                    want = "chainlog/" + result["ledger"]
                    if t_origin != want:
                        raise Break("checkpoint_inconsistent", result["tree_size"], 0,
                                    "trusted checkpoint origin %r, export origin %r"
                                    % (t_origin[:100], want))
            except Break:
                raise
            except UsageError:
                raise
            except OSError as e:
                raise Break("unreadable", 0, 0, "read error: %s" % e) from None
            except Exception as e:  # noqa: BLE001 - never a traceback
                raise Break("error", 0, 0, "unexpected %s: %s" % (type(e).__name__, e)) from None
    except UsageError as e:
        sys.stderr.write("verify_export.py: error: %s\n" % e)
        return 2
    except Break as b:
        if args.json:
            print(json.dumps({"ok": False, "kind": b.kind, "record": b.record,
                              "offset": b.offset, "detail": b.detail}))
        else:
            print("BROKEN %s at record %d (byte %d): %s" % (b.kind, b.record, b.offset, b.detail))
        return 1

    if args.json:
        print(json.dumps(result))
    else:
        print("OK %d records, %d redacted, root %s"
              % (result["records"], result["redacted"], result["root"]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - last resort, never a traceback
        print("BROKEN error at record 0 (byte 0): unexpected %s: %s" % (type(e).__name__, e))
        sys.exit(1)
