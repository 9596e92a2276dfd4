//! Times on the command line: RFC 3339 (through the library's `chainlog::json`) or relative
//! (`1h`, `30m`, `2d`) input, durations such as `--batch-interval 10ms`, and the binary
//! search that turns a time into a sequence number (a ledger's timestamps never decrease).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chainlog::Ledger;

use super::Failure;

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A duration: one or more NUMBER UNIT pairs (`500ms`, `1h30m`, `2d`), units `ns`, `us`,
/// `ms`, `s`, `m`, `h`, `d`, `w`; a bare `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is not a duration (like 100ms, 30s, 1h30m, 2d; units ns us ms s m h d w)")
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(digits);
        let n: u128 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(ns)
            .and_then(|v| v.checked_add(total))
            .ok_or_else(bad)?;
        rest = tail;
    }
    let total = u64::try_from(total).map_err(|_| bad())?;
    Ok(Duration::from_nanos(total))
}

/// A clap value parser for durations.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// A point in time given on the command line, in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant(pub u64);

/// A clap value parser for `--since` / `--until`: RFC 3339 (`2026-12-01T09:30:00Z`,
/// `2026-12-01T10:30:00+01:00`, fractions allowed), a date (`2026-12-01`, midnight UTC),
/// or a duration before now (`1h`, `30m`, `2d`).
pub fn instant_arg(s: &str) -> Result<Instant, String> {
    parse_instant(s, now_ns()).map(Instant)
}

pub fn parse_instant(s: &str, now: u64) -> Result<u64, String> {
    if s.starts_with(|c: char| c.is_ascii_digit()) && !s.contains('-') {
        let d = parse_duration(s)?;
        let ago = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        return Ok(now.saturating_sub(ago));
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!(
            "{s:?} is not a time: give RFC 3339 (2026-12-01T09:30:00Z), a date (2026-12-01) or a time before now (30m, 1h, 2d)"
        )
    })
}

/// RFC 3339 date-time (`T`, `t` or a space between date and time; `Z`, `z` or `±HH:MM`),
/// or a full date alone (midnight UTC). `None` if it is not one, or is before 1970.
/// The library parses (the `time` crate underneath); only the date alone and the
/// choice of separator are the CLI's own.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let date_only = s.len() == 10 && s.is_char_boundary(10);
    let full = if date_only {
        format!("{s}T00:00:00Z")
    } else {
        // RFC 3339 lets applications pick the separator; the CLI takes these three.
        if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
            return None;
        }
        s.to_owned()
    };
    chainlog::json::parse_rfc3339(&full).ok()
}

/// The records `lo..hi` narrowed to those with `since <= timestamp < until` (the
/// library's binary search).
pub fn narrow(
    ledger: &Ledger,
    dir: &std::path::Path,
    (lo, hi): (u64, u64),
    since: Option<Instant>,
    until: Option<Instant>,
) -> Result<(u64, u64), Failure> {
    let r = ledger
        .seqs_between(since.map(|i| i.0), until.map(|i| i.0))
        .map_err(|e| Failure::ledger(&e, dir.display().to_string()))?;
    Ok((r.start.clamp(lo, hi), r.end.clamp(lo, hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_instants() {
        use crate::output::Utc;
        assert_eq!(Utc(0).to_string(), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29T12:34:56.000000007Z: a leap day in a century leap year.
        assert_eq!(
            Utc(951_827_696_000_000_007).to_string(),
            "2000-02-29T12:34:56.000000007Z"
        );
        assert_eq!(Utc(u64::MAX).to_string(), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn rfc3339_round_trips_and_offsets() {
        for t in [0u64, 951_827_696_000_000_007, 1_764_581_400_123_456_789] {
            assert_eq!(parse_rfc3339(&crate::output::Utc(t).to_string()), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2000-02-29T13:34:56.000000007+01:00"),
            Some(951_827_696_000_000_007)
        );
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_rfc3339("1970-01-01 00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339("1970-01-01t00:00:01.5z"), Some(1_500_000_000));
        // Digits past nanoseconds are dropped.
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00.1234567891Z"),
            Some(123_456_789)
        );
        for bad in [
            "2001-02-29",
            "2000-13-01",
            "2000-01-01T24:00:00Z",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00+0100",
            "2000-01-01X00:00:00Z",
            "1969-12-31T23:59:59Z",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_and_relative_times() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1y").is_err());
        let now = 10 * 86_400 * 1_000_000_000;
        assert_eq!(parse_instant("2d", now), Ok(8 * 86_400 * 1_000_000_000));
        assert_eq!(parse_instant("1h", 5), Ok(0));
        assert!(parse_instant("soon", now).is_err());
    }
}
