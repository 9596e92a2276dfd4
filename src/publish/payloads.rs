//! Payload bundles, chainlog's own addition beside the C2SP tiles:
//! `chainlog/payloads/<N>[.p/<W>]` holds the salts and payloads of the records whose
//! entries `tile/entries/<N>[.p/<W>]` holds, in the same order. Layout in docs/FORMAT.md
//! ("Published payload bundles").

use crate::hash::HASH_LEN;
use crate::ledger::Record;
use crate::tiles::Tile;

/// Tag of a record whose salt and payload follow.
pub(crate) const PAYLOAD_PRESENT: u8 = 0;
/// Tag of a redacted record: nothing follows.
pub(crate) const PAYLOAD_REDACTED: u8 = 1;

/// The most bytes one item can take: tag, salt, length and the largest payload.
pub(crate) const MAX_ITEM_LEN: u64 = (1 + HASH_LEN + 4 + crate::format::MAX_PAYLOAD) as u64;

/// `chainlog/payloads/<N>[.p/<W>]`: beside the entry bundle of the same tile.
pub(crate) fn payloads_path(tile: &Tile) -> String {
    let entries = tile.entries_path();
    let index = entries.strip_prefix("tile/entries/").unwrap_or(&entries);
    format!("chainlog/payloads/{index}")
}

/// One record's published payload: its salt and bytes, or `None` when redacted.
pub(crate) type Item = Option<([u8; HASH_LEN], Vec<u8>)>;

/// The bundle of `records`: per record a tag, then for a present payload the salt and the
/// payload prefixed by its length (`u32`, big-endian).
pub(crate) fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        match (&r.salt, &r.payload) {
            (Some(salt), Some(payload)) => {
                out.push(PAYLOAD_PRESENT);
                out.extend_from_slice(salt);
                // A payload is at most MAX_PAYLOAD bytes, far below u32::MAX.
                out.extend_from_slice(
                    &u32::try_from(payload.len())
                        .unwrap_or(u32::MAX)
                        .to_be_bytes(),
                );
                out.extend_from_slice(payload);
            }
            _ => out.push(PAYLOAD_REDACTED),
        }
    }
    out
}

/// Splits a bundle into its items; the error says what is wrong at which byte.
pub(crate) fn decode(mut b: &[u8]) -> Result<Vec<Item>, String> {
    let total = b.len();
    let mut out = Vec::new();
    while let Some((&tag, rest)) = b.split_first() {
        let at = total - b.len();
        match tag {
            PAYLOAD_REDACTED => {
                out.push(None);
                b = rest;
            }
            PAYLOAD_PRESENT => {
                let (salt, rest) = rest
                    .split_first_chunk::<HASH_LEN>()
                    .ok_or(format!("item {} at byte {at}: truncated salt", out.len()))?;
                let (len, rest) = rest
                    .split_first_chunk::<4>()
                    .ok_or(format!("item {} at byte {at}: truncated length", out.len()))?;
                let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
                if rest.len() < len {
                    return Err(format!(
                        "item {} at byte {at}: payload of {len} bytes, only {} left",
                        out.len(),
                        rest.len()
                    ));
                }
                let (payload, rest) = rest.split_at(len);
                out.push(Some((*salt, payload.to_vec())));
                b = rest;
            }
            t => return Err(format!("item {} at byte {at}: unknown tag {t}", out.len())),
        }
    }
    Ok(out)
}

/// Whether a bundle already published can stand for `ours`: the same items, except that
/// records redacted since it was written are still present in it (it is write-once).
pub(crate) fn compatible(published: &[u8], ours: &[u8]) -> bool {
    let (Ok(theirs), Ok(ours)) = (decode(published), decode(ours)) else {
        return false;
    };
    theirs.len() == ours.len() && theirs.iter().zip(&ours).all(|(t, o)| o.is_none() || t == o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md's *Published logs* tables name these paths, tags and field sizes.
    #[test]
    fn format_md_published_tables_match_the_code() {
        let doc = include_str!("../../docs/FORMAT.md");
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with("Published logs"))
            .unwrap();
        let rows: Vec<Vec<&str>> = section
            .lines()
            .filter(|l| l.starts_with("| "))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        let tile = Tile {
            level: 0,
            index: 1_234_067,
            width: 9,
        };
        let first = |prefix: &str| rows.iter().find(|r| r[0].starts_with(prefix)).unwrap();
        assert_eq!(first("`tile/<L>")[0], "`tile/<L>/<N>[.p/<W>]`");
        assert_eq!(tile.path(), "tile/0/x001/x234/067.p/9");
        assert_eq!(first("`tile/entries")[0], "`tile/entries/<N>[.p/<W>]`");
        assert_eq!(
            first("`chainlog/payloads")[0],
            "`chainlog/payloads/<N>[.p/<W>]`"
        );
        assert_eq!(payloads_path(&tile), "chainlog/payloads/x001/x234/067.p/9");
        assert_eq!(
            first("`checkpoint`")[0],
            format!("`{}`", super::super::CHECKPOINT_PATH)
        );
        let item: Vec<(&str, &str)> = rows
            .iter()
            .skip_while(|r| r[0] != "bytes")
            .skip(1)
            .map(|r| (r[0], r[1]))
            .collect();
        assert_eq!(item[0].0, "1");
        assert!(item[0]
            .1
            .contains(&format!("`0x{PAYLOAD_PRESENT:02x}` present")));
        assert!(item[0]
            .1
            .contains(&format!("`0x{PAYLOAD_REDACTED:02x}` redacted")));
        assert_eq!((item[1].0, item[2].0), ("32", "4"));
        assert_eq!(HASH_LEN, 32);
        // The entry length the bundles' u16 prefix always carries.
        assert!(first("`tile/entries")[1].contains(&format!(
            "`00 {:02x}`, {}",
            crate::format::ENTRY_LEN,
            crate::format::ENTRY_LEN
        )));
    }

    #[test]
    fn bundles_round_trip_and_truncations_are_errors() {
        let items: Vec<Item> = vec![
            Some(([7; 32], b"abc".to_vec())),
            None,
            Some(([1; 32], vec![])),
        ];
        let mut b = Vec::new();
        for i in &items {
            match i {
                Some((salt, p)) => {
                    b.push(0);
                    b.extend_from_slice(salt);
                    b.extend_from_slice(&(p.len() as u32).to_be_bytes());
                    b.extend_from_slice(p);
                }
                None => b.push(1),
            }
        }
        assert_eq!(decode(&b).unwrap(), items);
        for cut in 1..b.len() {
            let d = decode(&b[..cut]);
            // A cut on an item boundary is a shorter, valid bundle; anywhere else an error.
            if let Ok(d) = d {
                assert!(d.len() < items.len(), "cut {cut}");
            }
        }
        assert!(decode(&[9]).unwrap_err().contains("unknown tag 9"));
        // The first record redacted since `b` was published.
        let redacted_since: Vec<u8> = [&[1u8][..], &b[40..]].concat();
        assert!(compatible(&b, &redacted_since));
        assert!(!compatible(&redacted_since, &b));
        assert!(compatible(&b, &b));
    }
}
