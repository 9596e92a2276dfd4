//! Times on the command line: RFC 3339 output, RFC 3339 or relative (`1h`, `30m`, `2d`)
//! input, durations such as `--batch-interval 10ms`, and the binary search that turns a
//! time into a sequence number (a ledger's timestamps never decrease).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chainlog::Ledger;

use super::Failure;

/// Nanoseconds since the Unix epoch, shown as an RFC 3339 UTC time.
pub struct Utc(pub u64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        // u64 nanoseconds reach year 2554: days fit i64 with room to spare.
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of the above).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

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

fn num(s: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = s.parse().ok()?;
    range.contains(&n).then_some(n)
}

/// RFC 3339 date-time (`T`, `t` or a space between date and time; `Z`, `z` or `±HH:MM`),
/// or a full date alone. `None` if it is not one, or is before 1970.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let date = s.get(..10)?;
    let (y, m, d) = (
        num(date.get(0..4)?, 0..=9999)?,
        num(date.get(5..7)?, 1..=12)?,
        num(date.get(8..10)?, 1..=31)?,
    );
    if date.get(4..5)? != "-" || date.get(7..8)? != "-" {
        return None;
    }
    let (y, days_in_month) = (
        i64::from(y),
        [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let max_day = match m {
        2 if leap => 29,
        _ => *days_in_month.get(usize::try_from(m - 1).ok()?)?,
    };
    if d > max_day {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let rest = s.get(10..)?;
    let (secs_of_day, nanos, offset): (i64, u64, i64) = if rest.is_empty() {
        (0, 0, 0)
    } else {
        let sep = rest.get(0..1)?;
        if !matches!(sep, "T" | "t" | " ") {
            return None;
        }
        let time = rest.get(1..)?;
        let (hh, mm, ss) = (
            num(time.get(0..2)?, 0..=23)?,
            num(time.get(3..5)?, 0..=59)?,
            // 60: a leap second, taken as the next second's start.
            num(time.get(6..8)?, 0..=60)?,
        );
        if time.get(2..3)? != ":" || time.get(5..6)? != ":" {
            return None;
        }
        let mut tail = time.get(8..)?;
        let mut nanos = 0u64;
        if let Some(frac) = tail.strip_prefix('.') {
            let n = frac
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac.len());
            if n == 0 {
                return None;
            }
            let digits = frac.get(..n)?;
            // Digits past nanoseconds are dropped (truncated toward the past).
            let mut padded: String = digits.chars().take(9).collect();
            while padded.len() < 9 {
                padded.push('0');
            }
            nanos = padded.parse().ok()?;
            tail = frac.get(n..)?;
        }
        let offset = match tail {
            "Z" | "z" => 0,
            _ => {
                let sign = match tail.get(0..1)? {
                    "+" => 1,
                    "-" => -1,
                    _ => return None,
                };
                if tail.len() != 6 || tail.get(3..4)? != ":" {
                    return None;
                }
                let oh = num(tail.get(1..3)?, 0..=23)?;
                let om = num(tail.get(4..6)?, 0..=59)?;
                sign * i64::from(oh * 3600 + om * 60)
            }
        };
        (i64::from(hh * 3600 + mm * 60 + ss), nanos, offset)
    };
    let secs = days
        .checked_mul(86_400)?
        .checked_add(secs_of_day)?
        .checked_sub(offset)?;
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
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
            assert_eq!(parse_rfc3339(&Utc(t).to_string()), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2000-02-29T13:34:56.000000007+01:00"),
            Some(951_827_696_000_000_007)
        );
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_rfc3339("1970-01-01 00:00:01.5Z"), Some(1_500_000_000));
        for bad in [
            "2001-02-29",
            "2000-13-01",
            "2000-01-01T24:00:00Z",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00+0100",
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
