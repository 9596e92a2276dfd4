#!/usr/bin/env python3
"""Independent verifier for chainlog export files.

Written from docs/FORMAT.md alone (no chainlog source consulted).

    verify_export.py FILE [--pub VERIFIER_KEY_FILE] [--trusted CHECKPOINT_FILE] [--json]

Exit 0: the export verifies.  Exit 1: the first break found is reported as
``BROKEN <kind> at record <n> (byte <offset>): <detail>``.  Exit 2: usage error
(bad arguments, unreadable FILE / key file, missing dependency).

The file is streamed: memory use is bounded by one 1 MiB read buffer, the
≤ 1 MiB checkpoint note, a ≤ 64-hash Merkle frontier, one redaction record's
payload (≤ 16 MiB) and one (seq, hash) pair per redacted record or redaction.
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

EXPORT_VERSION = 0x02
KIND_ORDINARY = 0x01
KIND_REDACTION = 0x02
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
MAX_TREE = 1 << 62

HEADER_MAGIC = b"CLEXPORT"
HEADER_FIXED = 42
TRAILER_MAGIC = b"CLTRAILR"
TRAILER_FIXED = 92
MAX_NOTE = 1024 * 1024                   # 1 MiB
MAX_SIGNATURES = 100
REDACTION_PREFIX = b"chainlog-redaction/1 "

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
    # FORMAT.md: non-empty, no '+', no Unicode white space (control characters below
    # U+0020 cannot occur in a note at all).
    return (bool(name) and "+" not in name
            and not any(c.isspace() or ord(c) < 0x20 for c in name))


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
    """C2SP signed-note, FORMAT.md "Signed-note rules" -> (text, [(name, raw bytes)])."""
    if len(data) > MAX_NOTE:
        raise NoteError("note is over 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note contains a control character other than newline")
    i = text.rfind("\n\n")
    if i < 0:
        raise NoteError("note has no blank line before its signatures")
    body = text[: i + 1]
    sig_block = text[i + 2:]
    if not sig_block:
        raise NoteError("note has no signature lines")
    if not sig_block.endswith("\n"):
        raise NoteError("note does not end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("note has more than %d signature lines" % MAX_SIGNATURES)
    sigs = []
    for line in lines:
        if not line.startswith(EM_DASH_PREFIX):
            raise NoteError("signature line does not start with '\u2014 ': %r" % line[:80])
        rest = line[len(EM_DASH_PREFIX):]
        sp = rest.find(" ")
        if sp < 0:
            raise NoteError("signature line has no space after the key name")
        name, b64 = rest[:sp], rest[sp + 1:]
        if not valid_key_name(name):
            raise NoteError("signature line has an invalid key name %r" % name[:80])
        raw = std_b64decode(b64)
        if raw is None or len(raw) < 5:
            raise NoteError("signature of key %r is not canonical base64 of key id ‖ signature"
                            % name[:80])
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
    if root is None or len(root) != HASH_LEN:
        raise NoteError("checkpoint root hash is not canonical base64 of 32 bytes")
    for ext in lines[3:]:
        if not ext:
            raise NoteError("checkpoint has an empty extension line")
    return origin, size, root


def check_signature(body, sigs, key):
    """Return None when a signature by `key` verifies and none by it fails, else a reason."""
    name, kid, pub = key
    good = False
    for sname, raw in sigs:
        if sname != name or raw[:4] != kid:
            continue  # C2SP: signatures by unknown keys are ignored
        if len(raw) == 4 + 64 and ed25519_verify(pub, body.encode("utf-8"), raw[4:]):
            good = True
        else:
            return "a signature by key %s+%s does not verify" % (name, kid.hex())
    if not good:
        return "no signature by key %s+%s" % (name, kid.hex())
    return None


def is_cc(c):
    """FORMAT.md's control character: Unicode category Cc."""
    o = ord(c)
    return o < 0x20 or 0x7f <= o <= 0x9f


def parse_redaction(payload):
    """FORMAT.md *Redaction* grammar -> (seq, hash bytes); NoteError with the reason."""
    if not payload.startswith(REDACTION_PREFIX):
        raise NoteError("does not start with the redaction prefix")
    try:
        rest = payload[len(REDACTION_PREFIX):].decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("is not UTF-8") from None
    if not rest.startswith("seq="):
        raise NoteError("has no seq=")
    seq_s, sep, rest = rest[4:].partition(" ")
    if not sep or not seq_s or not all(c in "0123456789" for c in seq_s) or \
            (len(seq_s) > 1 and seq_s[0] == "0"):
        raise NoteError("seq is not a canonical decimal number")
    seq = int(seq_s)
    if seq >= 1 << 64:
        raise NoteError("seq does not fit in 64 bits")
    if not rest.startswith("hash="):
        raise NoteError("has no hash=")
    hx, sep, rest = rest[5:].partition(" ")
    if not sep or len(hx) != 64 or any(c not in "0123456789abcdef" for c in hx):
        raise NoteError("hash is not 64 lowercase hex digits")
    if not rest.startswith("reason="):
        raise NoteError("has no reason=")
    if any(is_cc(c) for c in rest[7:]):
        raise NoteError("reason has a control character")
    return seq, bytes.fromhex(hx)


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


def read_or_short(r, n):
    """Read up to n bytes; (bytes, complete?)."""
    out = bytearray()
    while len(out) < n:
        chunk = r.f.read(min(n - len(out), CHUNK))
        if not chunk:
            break
        out += chunk
    r.pos += len(out)
    return bytes(out), len(out) == n


def decode_entry(entry):
    """Entry fields; NoteError naming the first bad field (kind, then algorithm)."""
    if entry[0] not in (KIND_ORDINARY, KIND_REDACTION):
        raise NoteError("entry kind 0x%02x is reserved" % entry[0])
    if entry[1] not in ALG_NAMES:
        raise NoteError("entry algorithm 0x%02x is unknown" % entry[1])
    return {"alg": entry[1], "kind": entry[0], "seq": u64(entry, 2), "ts": u64(entry, 10),
            "prev": entry[18:50], "commit": entry[50:82], "plen": u32(entry, 82)}


def verify(f, key=None, trusted=None):
    r = Reader(f)

    # ---- header (FORMAT.md "Verifying an export", step 1: all bad_header, record 0)
    def hb(off, detail):
        return Break("bad_header", 0, off, detail)
    head, ok = read_or_short(r, HEADER_FIXED)
    if not ok:
        raise hb(r.pos, "the file ends inside the header")
    if head[0:8] != HEADER_MAGIC:
        raise hb(0, "header magic is %r, not %r" % (head[0:8], HEADER_MAGIC))
    if head[8] != EXPORT_VERSION:
        raise hb(8, "header version is 0x%02x, not 0x02" % head[8])
    frm = u64(head, 26)
    count = u64(head, 34)
    k = bin(frm).count("1")
    t = (frm & -frm).bit_length() - 1 if frm else 0
    hlen = HEADER_FIXED + HASH_LEN * k + (ENTRY_LEN + HASH_LEN * t if frm else 0) + 4
    rest, ok = read_or_short(r, hlen - HEADER_FIXED)
    if not ok:
        raise hb(r.pos, "the file ends inside the header (%d bytes)" % hlen)
    hdr = head + rest
    if zlib.crc32(hdr[:-4]) != u32(hdr, hlen - 4):
        raise hb(hlen - 4, "header CRC mismatch")
    alg = hdr[9]
    if alg not in ALG_NAMES:
        raise hb(9, "header algorithm 0x%02x is unknown" % alg)
    if frm + count >= 1 << 64:
        raise hb(34, "from + count does not fit in 64 bits")
    if frm > MAX_TREE:
        raise hb(42, "from is above 2^62")
    ledger = hdr[10:26]
    frontier = [hdr[42 + i * HASH_LEN:42 + (i + 1) * HASH_LEN] for i in range(k)]
    H = Hash(alg)
    genesis_prev = H(TAG_GENESIS, GENESIS_LABEL, bytes([alg]), ledger)
    prev_hash, prev_ts = genesis_prev, 0
    if frm:
        eoff = 42 + HASH_LEN * k
        pentry = hdr[eoff:eoff + ENTRY_LEN]
        try:
            pe = decode_entry(pentry)
        except NoteError as e:
            raise hb(eoff, "predecessor entry: %s" % e) from None
        if pe["alg"] != alg:
            raise hb(eoff, "predecessor entry algorithm differs from the header's")
        if pe["seq"] != frm - 1:
            raise hb(eoff, "predecessor entry is record %d, not %d" % (pe["seq"], frm - 1))
        h = H(TAG_LEAF, pentry)
        po = eoff + ENTRY_LEN
        for i in range(t):
            h = H.node(hdr[po + i * HASH_LEN:po + (i + 1) * HASH_LEN], h)
        if h != frontier[-1]:
            raise hb(eoff, "predecessor entry is not leaf %d of the header's tree" % (frm - 1))
        prev_hash, prev_ts = H(TAG_LEAF, pentry), pe["ts"]

    tree = Tree(H, frontier, frm)
    trusted_checked = False
    if trusted is not None:
        t_size, t_root = trusted
        if t_size < frm:
            raise Break("trusted_not_covered", frm, 26,
                        "trusted checkpoint size %d is below the export's from %d" % (t_size, frm))
        if t_size == frm:
            if tree.root() != t_root:
                raise Break("trusted_forked", frm, 42,
                            "header frontier root %s differs from the trusted checkpoint root %s"
                            % (tree.root().hex(), t_root.hex()))
            trusted_checked = True

    # ---- frames (step 2: every break at the offset where the frame starts)
    seq_expected = frm
    end = frm + count
    redacted = []        # (seq, hash) of redacted records
    named = set()        # (seq, hash) named by redaction records
    last_hash = prev_hash
    last_ts = prev_ts
    while seq_expected < end:
        rec = seq_expected
        off = r.pos
        lenb, ok = read_or_short(r, 4)
        if not ok:
            raise Break("truncated", rec, off, "the file ends before record %d" % rec)
        flen = u32(lenb, 0)
        if flen < FRAME_REDACTED or flen > FRAME_MAX:
            raise Break("malformed", rec, off,
                        "frame_len %d outside [%d, %d]" % (flen, FRAME_REDACTED, FRAME_MAX))
        fh, ok = read_or_short(r, FRAME_HEAD - 4)
        if not ok:
            raise Break("truncated", rec, off, "the file ends inside record %d" % rec)
        entry = fh[0:ENTRY_LEN]
        stored_hash = fh[ENTRY_LEN:ENTRY_LEN + HASH_LEN]
        body_tag = fh[ENTRY_LEN + HASH_LEN]
        e_plen = u32(entry, 82)
        # The rest of the frame: salt and payload (hashed only when the shape is right).
        shaped = body_tag == 0 and flen == FRAME_FIXED_BODY + e_plen
        crc = zlib.crc32(fh, zlib.crc32(lenb))
        left = flen - FRAME_HEAD - 4
        ch = H.new() if shaped else None
        if ch is not None:
            ch.update(TAG_COMMIT)
        # A redaction record's salt and payload are kept, to read its grammar.
        keep = shaped and entry[0] == KIND_REDACTION
        kept = bytearray()
        while left:
            chunk, ok = read_or_short(r, min(left, CHUNK))
            if not ok:
                raise Break("truncated", rec, off, "the file ends inside record %d" % rec)
            crc = zlib.crc32(chunk, crc)
            if ch is not None:
                ch.update(chunk)
                if keep:
                    kept += chunk
            left -= len(chunk)
        crcb, ok = read_or_short(r, 4)
        if not ok:
            raise Break("truncated", rec, off, "the file ends inside record %d" % rec)
        if crc != u32(crcb, 0):
            raise Break("corrupt", rec, off, "frame CRC mismatch (stored %08x, computed %08x)"
                        % (u32(crcb, 0), crc))
        try:
            e = decode_entry(entry)
        except NoteError as err:
            raise Break("malformed", rec, off, str(err)) from None
        if body_tag not in (0, 1):
            raise Break("malformed", rec, off, "body_tag 0x%02x is neither 0x00 nor 0x01"
                        % body_tag)
        want_len = FRAME_FIXED_BODY + e_plen if body_tag == 0 else FRAME_REDACTED
        if flen != want_len or e_plen > MAX_PAYLOAD:
            raise Break("malformed", rec, off,
                        "frame_len %d disagrees with body_tag %d and payload_len %d"
                        % (flen, body_tag, e_plen))
        if e["alg"] != alg:
            raise Break("wrong_algorithm", rec, off,
                        "frame algorithm 0x%02x differs from the export's 0x%02x"
                        % (e["alg"], alg))
        rh = H(TAG_LEAF, entry)
        if rh != stored_hash:
            raise Break("hash_mismatch", rec, off,
                        "stored record hash %s, H(0x00 ‖ entry) = %s"
                        % (stored_hash.hex(), rh.hex()))
        if e["seq"] != seq_expected:
            raise Break("sequence_gap", rec, off,
                        "frame seq %d, expected %d" % (e["seq"], seq_expected))
        if ch is not None and ch.digest() != e["commit"]:
            raise Break("payload_mismatch", rec, off,
                        "salt and payload do not hash to the entry's commitment")
        if rec == 0:
            if e["prev"] != genesis_prev:
                raise Break("genesis_mismatch", rec, off,
                            "record 0 prev_hash %s is not genesis_prev %s"
                            % (e["prev"].hex(), genesis_prev.hex()))
        elif e["prev"] == genesis_prev:
            raise Break("duplicate_genesis", rec, off,
                        "record %d carries the genesis predecessor" % rec)
        elif e["prev"] != last_hash:
            raise Break("link_mismatch", rec, off,
                        "prev_hash %s, previous record hash %s"
                        % (e["prev"].hex(), last_hash.hex()))
        if e["ts"] < last_ts:
            raise Break("timestamp_regression", rec, off,
                        "timestamp %d earlier than previous %d" % (e["ts"], last_ts))
        if e["kind"] == KIND_REDACTION:
            if body_tag == 1:
                raise Break("malformed", rec, off, "a redaction record's payload was removed")
            payload = bytes(kept[SALT_LEN:])
            try:
                n_seq, n_hash = parse_redaction(payload)
            except NoteError as err:
                raise Break("malformed", rec, off,
                            "the redaction record's payload %s" % err) from None
            if n_seq >= rec:
                raise Break("malformed", rec, off,
                            "the redaction record names record %d, which is not earlier" % n_seq)
            named.add((n_seq, n_hash))
        if body_tag == 1:
            redacted.append((rec, rh))
        tree.append(rh)
        last_hash = rh
        last_ts = e["ts"]
        seq_expected += 1
        if trusted is not None and not trusted_checked and tree.size == trusted[0]:
            if tree.root() != trusted[1]:
                raise Break("trusted_forked", rec, off,
                            "root after record %d is %s, trusted checkpoint says %s"
                            % (rec, tree.root().hex(), trusted[1].hex()))
            trusted_checked = True

    # ---- trailer (step 3)
    rec = end
    toff = r.pos
    t, ok = read_or_short(r, TRAILER_FIXED)
    if not ok:
        raise Break("truncated", rec, toff, "the file ends inside the trailer")
    if t[0:8] != TRAILER_MAGIC:
        raise Break("bad_trailer", rec, toff,
                    "trailer magic is %r, not %r" % (t[0:8], TRAILER_MAGIC))
    note_len = u32(t, 88)
    if note_len > MAX_NOTE:
        raise Break("bad_trailer", rec, toff + 88, "note_len %d exceeds 1 MiB" % note_len)
    tail, ok = read_or_short(r, note_len + 4)
    if not ok:
        raise Break("truncated", rec, r.pos, "the file ends inside the trailer")
    note, crcb = tail[:note_len], tail[note_len:]
    if zlib.crc32(note, zlib.crc32(t)) != u32(crcb, 0):
        raise Break("bad_trailer", rec, toff + TRAILER_FIXED + note_len, "trailer CRC mismatch")
    extra_off = r.pos
    extra = f.read(1)
    if extra:
        raise Break("trailing_data", rec, extra_off, "bytes follow the trailer")
    try:
        note.decode("utf-8")
    except UnicodeDecodeError:
        raise Break("bad_trailer", rec, toff + TRAILER_FIXED, "the note is not UTF-8") from None
    t_count = u64(t, 8)
    t_last = t[16:48]
    t_size = u64(t, 48)
    t_root = t[56:88]
    root = tree.root()
    if t_count != count:
        raise Break("trailer_mismatch", rec, toff,
                    "trailer count %d, header count %d" % (t_count, count))
    if t_last != last_hash:
        raise Break("trailer_mismatch", rec, toff,
                    "trailer last_hash %s, last record hash %s" % (t_last.hex(), last_hash.hex()))
    if t_size != tree.size:
        raise Break("trailer_mismatch", rec, toff,
                    "trailer tree_size %d, from + count = %d" % (t_size, tree.size))
    if t_root != root:
        raise Break("trailer_mismatch", rec, toff,
                    "trailer root %s, computed root %s" % (t_root.hex(), root.hex()))

    # ---- checkpoint note (step 4: form, body, origin, size and root, then signatures)
    checkpoint = "none"
    noff = toff + TRAILER_FIXED
    if note_len:
        try:
            body, sigs = parse_signed_note(note)
            origin, c_size, c_root = parse_checkpoint(body)
        except NoteError as e:
            raise Break("checkpoint_mismatch", rec, noff, str(e)) from None
        want_origin = "chainlog/" + ledger.hex()
        if origin != want_origin:
            raise Break("checkpoint_mismatch", rec, noff,
                        "checkpoint origin %r, expected %r" % (origin[:64], want_origin))
        if c_size != t_size or c_root != root:
            raise Break("checkpoint_mismatch", rec, noff,
                        "checkpoint says size %d root %s, export %d %s"
                        % (c_size, c_root.hex(), t_size, root.hex()))
        checkpoint = "unverified"
        if key is not None:
            why = check_signature(body, sigs, key)
            if why:
                raise Break("bad_signature", rec, noff, why)
            checkpoint = "verified"
    elif key is not None:
        raise Break("bad_signature", rec, toff + 88,
                    "a verifier key was given but the export has no checkpoint note")

    if trusted is not None and not trusted_checked:
        raise Break("trusted_truncated", rec, toff,
                    "trusted checkpoint size %d is beyond the export's tree_size %d"
                    % (trusted[0], tree.size))

    return {
        "ok": True,
        "records": count,
        "redacted": len(redacted),
        "unrecorded_redactions": sum(1 for x in redacted if x not in named),
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
                        raise Break("trusted_wrong_origin", result["tree_size"], 0,
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
        print("OK %d records, %d redacted (%d unrecorded), root %s"
              % (result["records"], result["redacted"], result["unrecorded_redactions"],
                 result["root"]))
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
