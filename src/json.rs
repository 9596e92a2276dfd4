//! The shapes chainlog's types take in JSON (and any serde format), chosen so that other
//! languages read them without loss:
//!
//! - a payload is `{"encoding": "utf8", "data": "text"}` when its bytes are valid UTF-8,
//!   else `{"encoding": "base64", "data": "..."}` (standard alphabet, padded); `null`
//!   when it was redacted;
//! - a timestamp is two fields: `timestamp`, an RFC 3339 UTC time with nanoseconds
//!   (`2026-12-01T09:00:00.123456789Z`), and `timestamp_ns`, the same instant as an
//!   integer of nanoseconds since the Unix epoch. The integer is exact for Rust and
//!   Python, but JavaScript's numbers round integers above 2^53 (every current
//!   timestamp): there, read the string.
//!
//! The CLI's `--json` output is built from the same helpers.

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a payload's bytes are written as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncoding {
    /// The bytes are valid UTF-8 and `data` is that text.
    Utf8,
    /// `data` is the bytes in standard, padded base64.
    Base64,
}

impl PayloadEncoding {
    /// `utf8` or `base64`, as JSON spells it.
    pub const fn name(self) -> &'static str {
        match self {
            PayloadEncoding::Utf8 => "utf8",
            PayloadEncoding::Base64 => "base64",
        }
    }
}

impl fmt::Display for PayloadEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A payload as text: `{"encoding": "utf8" | "base64", "data": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// How `data` spells the bytes: as the text itself, or in base64.
    pub encoding: PayloadEncoding,
    /// The payload's bytes, written as `encoding` says.
    pub data: String,
}

impl Payload {
    /// UTF-8 text when the bytes are valid UTF-8, base64 otherwise.
    pub fn of(bytes: &[u8]) -> Payload {
        match std::str::from_utf8(bytes) {
            Ok(s) => Payload {
                encoding: PayloadEncoding::Utf8,
                data: s.to_owned(),
            },
            Err(_) => Payload {
                encoding: PayloadEncoding::Base64,
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }

    /// The bytes back; an error when `data` is not valid base64.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the encoding is base64 and `data` does not decode.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        match self.encoding {
            PayloadEncoding::Utf8 => Ok(self.data.as_bytes().to_vec()),
            PayloadEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .map_err(|e| Error::InvalidArgument {
                    detail: format!("a base64 payload does not decode: {e}"),
                }),
        }
    }
}

/// Nanoseconds since the Unix epoch, shown (and serialised) as an RFC 3339 UTC time
/// with all nine fractional digits: `2026-12-01T09:00:00.123456789Z`.
#[cfg(feature = "store")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339(pub u64);

#[cfg(feature = "store")]
impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Any u64 of nanoseconds is before the year 2555, well inside `time`'s range.
        match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0)) {
            // Written out here rather than by `time`'s formatter, which drops trailing
            // zeros of the fraction: a fixed width sorts as text.
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.nanosecond()
            ),
            Err(_) => write!(f, "{} ns after the Unix epoch", self.0),
        }
    }
}

#[cfg(feature = "store")]
impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The RFC 3339 form of `ns` nanoseconds since the Unix epoch (see [`Rfc3339`]).
#[cfg(feature = "store")]
pub fn rfc3339(ns: u64) -> String {
    Rfc3339(ns).to_string()
}

/// Parses an RFC 3339 date-time (any offset; fractions up to nanoseconds) into
/// nanoseconds since the Unix epoch; an error when it is not one, or is before 1970.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when `s` is not an RFC 3339 date-time, or names an instant
/// before 1970 or past what a `u64` of nanoseconds holds (2554).
#[cfg(feature = "store")]
pub fn parse_rfc3339(s: &str) -> Result<u64> {
    let bad = |why: String| Error::InvalidArgument {
        detail: format!(
            "{:?} is not an RFC 3339 time: {why}",
            s.chars().take(80).collect::<String>()
        ),
    };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| bad(e.to_string()))?;
    u64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| bad("it is before 1970 or after 2554".into()))
}

/// A record's or receipt's JSON shape (see the module documentation); the library's
/// types serialise through these, so their field names are in one place.
#[cfg(all(feature = "store", not(loom)))]
mod shapes {
    use serde::{Serialize, Serializer};

    use super::{Payload, Rfc3339};
    use crate::format::RecordKind;
    use crate::hash::Hash;
    use crate::ledger::{HeadInfo, Record};
    use crate::writer::Receipt;

    #[derive(Serialize)]
    struct RecordJson<'a> {
        seq: u64,
        timestamp: Rfc3339,
        timestamp_ns: u64,
        prev_hash: &'a Hash,
        hash: &'a Hash,
        kind: RecordKind,
        commitment: &'a Hash,
        payload_len: u32,
        /// `null` when redacted.
        payload: Option<Payload>,
    }

    impl Serialize for Record {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            RecordJson {
                seq: self.seq,
                timestamp: Rfc3339(self.timestamp),
                timestamp_ns: self.timestamp,
                prev_hash: &self.prev_hash,
                hash: &self.hash,
                kind: self.kind,
                commitment: &self.commitment,
                payload_len: self.payload_len,
                payload: self.payload.as_deref().map(Payload::of),
            }
            .serialize(s)
        }
    }

    #[derive(Serialize)]
    struct ReceiptJson<'a> {
        seq: u64,
        hash: &'a Hash,
        timestamp: Rfc3339,
        timestamp_ns: u64,
    }

    impl Serialize for Receipt {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ReceiptJson {
                seq: self.seq,
                hash: &self.hash,
                timestamp: Rfc3339(self.timestamp),
                timestamp_ns: self.timestamp,
            }
            .serialize(s)
        }
    }

    #[derive(Serialize)]
    struct HeadJson<'a> {
        len: u64,
        hash: &'a Hash,
        timestamp: Rfc3339,
        timestamp_ns: u64,
    }

    impl Serialize for HeadInfo {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            HeadJson {
                len: self.len,
                hash: &self.hash,
                timestamp: Rfc3339(self.timestamp),
                timestamp_ns: self.timestamp,
            }
            .serialize(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_utf8_text_or_base64_and_round_trip() {
        let p = Payload::of("héllo".as_bytes());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"encoding": "utf8", "data": "héllo"})
        );
        let bin = [0xff, 0x00, 0xfe];
        let p = Payload::of(&bin);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"encoding": "base64", "data": "/wD+"})
        );
        for bytes in [&b""[..], b"text", &bin, "é\n".as_bytes()] {
            let p = Payload::of(bytes);
            let back: Payload = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back, p);
            assert_eq!(back.to_bytes().unwrap(), bytes);
        }
        let bad: Payload = serde_json::from_str(r#"{"encoding":"base64","data":"*"}"#).unwrap();
        assert!(bad.to_bytes().is_err());
        assert!(serde_json::from_str::<Payload>(r#"{"encoding":"hex","data":""}"#).is_err());
    }

    #[cfg(feature = "store")]
    #[test]
    fn rfc3339_has_nine_digits_and_parses_back_exactly() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_827_696_000_000_007),
            "2000-02-29T12:34:56.000000007Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
        // Above 2^53, where JavaScript's numbers lose the last digits: the string keeps
        // them.
        let big = 1_796_155_419_786_068_873u64;
        assert!(big > 1 << 53);
        assert_eq!(rfc3339(big), "2026-12-01T20:03:39.786068873Z");
        for t in [0, 1, 951_827_696_000_000_007, big, u64::MAX] {
            assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), t);
        }
        assert_eq!(
            parse_rfc3339("2000-02-29T13:34:56.000000007+01:00").unwrap(),
            951_827_696_000_000_007
        );
        for bad in [
            "1969-12-31T23:59:59Z",
            "2000-01-01",
            "2000-01-01T00:00:00",
            "x",
        ] {
            let e = parse_rfc3339(bad).unwrap_err().to_string();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
