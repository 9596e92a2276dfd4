#!/usr/bin/env python3
"""Computes chainlog's golden test vectors from docs/FORMAT.md alone.

An implementation independent of the Rust code: tests/golden.rs and docs/FORMAT.md hold
the values this script prints, so the Rust encoder and the document are checked against
each other. Needs `pip install blake3`.
"""
import hashlib
import struct
import zlib

import blake3

ALGS = {"blake3": (0x01, lambda b: blake3.blake3(b).digest()),
        "sha256": (0x02, lambda b: hashlib.sha256(b).digest())}
LEDGER_ID = bytes(range(16))
TS0 = 1_700_000_000_000_000_000
KIND_ORDINARY, KIND_REDACTION = 0x01, 0x02
RECORDS = [  # (salt byte, payload, timestamp, kind); None: the redaction record of record 2
    (0x11, b"hello, ledger", TS0, KIND_ORDINARY),
    (0x22, b"", TS0 + 1000, KIND_ORDINARY),
    (0x33, b"\x00\xff\xfe", TS0 + 1000, KIND_ORDINARY),
    (0x44, None, TS0 + 2000, KIND_REDACTION),
]


def frame(alg_id, H, kind, seq, ts, prev, salt, payload, redacted=False):
    commitment = H(b"\x02" + salt + payload)
    entry = (bytes([kind, alg_id]) + struct.pack(">QQ", seq, ts) + prev
             + commitment + struct.pack(">I", len(payload)))
    assert len(entry) == 86
    rh = H(b"\x00" + entry)
    body = b"\x01" if redacted else b"\x00" + salt + payload
    length = 4 + len(entry) + 32 + len(body) + 4
    f = struct.pack(">I", length) + entry + rh + body
    return f + struct.pack(">I", zlib.crc32(f)), rh


for name, (alg_id, H) in ALGS.items():
    prev = H(b"\x03" + b"chainlog genesis" + bytes([alg_id]) + LEDGER_ID)
    print(f"{name} genesis_prev {prev.hex()}")
    hashes = []
    for seq, (sb, payload, ts, kind) in enumerate(RECORDS):
        if payload is None:
            payload = f"chainlog-redaction/1 seq=2 hash={hashes[2].hex()} reason=test".encode()
        f, rh = frame(alg_id, H, kind, seq, ts, prev, bytes([sb]) * 32, payload)
        hashes.append(rh)
        print(f"{name} record {seq} hash {rh.hex()}")
        print(f"{name} record {seq} frame {f.hex()}")
        if seq == 2:
            fr, rh2 = frame(alg_id, H, kind, seq, ts, prev, bytes([sb]) * 32, payload,
                            redacted=True)
            assert rh2 == rh
            print(f"{name} record {seq} redacted_frame {fr.hex()}")
        prev = rh
