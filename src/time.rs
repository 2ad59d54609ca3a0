//! The two date forms events carry (SPEC §5): RFC 3339 (`eventTime`, `time`) and CloudTrail's
//! rendering of `responseElements.deletionDate` (`Nov 27, 2026, 9:15:02 AM`, with a plain or a
//! narrow no-break space before AM/PM). Both are read as UTC. Pure; no calendar library needed
//! for two fixed forms. Log and metric lines are stamped in RFC 3339 ([`format_rfc3339`]), the
//! form Lambda's log-level filter requires (SPEC §10).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (the inverse of
/// `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-27T09:15:02.123Z`: RFC 3339 in UTC with milliseconds. A time before 1970 (a clock
/// that cannot be) renders as the epoch.
pub fn format_rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let (h, mi, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let ms = since.subsec_millis();
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A UTC date and time of day as a `SystemTime`, when every field is in range.
fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, offset_secs: i64) -> Option<SystemTime> {
    let valid = (1970..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=days_in_month(y, mo)).contains(&d)
        && h < 24
        && mi < 60
        && s < 61;
    if !valid {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(s.min(59))
        - offset_secs;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn num(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `2026-11-27T09:15:02Z`, `2026-11-27T09:15:02.123+01:00` (also `t`, `z`, a space for `T`).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (date, rest) = s.split_at_checked(10)?;
    let mut d = date.split('-');
    let (y, mo, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || date.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, zone) = rest.split_at_checked(8)?;
    let mut t = time.split(':');
    let (h, mi, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    let mut zone = zone;
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        zone = &frac[digits..];
    }
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = zone[1..].split_once(':')?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 || zone.len() != 6 {
                return None;
            }
            sign * (i64::from(oh) * 3600 + i64::from(om) * 60)
        }
    };
    at(i64::from(y), mo, day, h, mi, sec, offset)
}

/// CloudTrail's `MMM d, yyyy[,] h:mm:ss a`: `Nov 27, 2026, 9:15:02 AM` (a space or U+202F
/// before AM/PM), read as UTC.
pub fn parse_cloudtrail(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let s = s.trim().replace(['\u{202f}', '\u{a0}'], " ");
    let mut parts = s.split([' ', ',']).filter(|p| !p.is_empty());
    let month = parts.next()?.to_ascii_lowercase();
    let mo = MONTHS.iter().position(|m| month.starts_with(m))? as u32 + 1;
    let day = num(parts.next()?)?;
    let year = num(parts.next()?)?;
    let time = parts.next()?;
    let ampm = parts.next()?.to_ascii_uppercase();
    if parts.next().is_some() {
        return None;
    }
    let mut t = time.split(':');
    let (h12, mi, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if t.next().is_some() || !(1..=12).contains(&h12) {
        return None;
    }
    let h = match ampm.as_str() {
        "AM" => h12 % 12,
        "PM" => h12 % 12 + 12,
        _ => return None,
    };
    at(i64::from(year), mo, day, h, mi, sec, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn rfc3339_forms() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-11-27T09:15:02Z", Some(1_795_770_902)),
            ("2026-11-27T09:15:02.123Z", Some(1_795_770_902)),
            ("2026-11-27T10:15:02+01:00", Some(1_795_770_902)),
            ("2026-11-27 09:15:02z", Some(1_795_770_902)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800)),
            ("2023-02-29T00:00:00Z", None),
            ("2026-11-27T09:15:02", None),
            ("2026-13-01T00:00:00Z", None),
            ("Nov 27, 2026, 9:15:02 AM", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_rfc3339(s).map(secs), want, "{s}");
        }
    }

    #[test]
    fn cloudtrail_forms() {
        let at_9 = Some(1_795_770_902);
        let cases = [
            ("Nov 27, 2026, 9:15:02 AM", at_9),
            ("Nov 27, 2026 9:15:02 AM", at_9),
            ("Nov 27, 2026, 9:15:02\u{202f}AM", at_9),
            ("Nov 27, 2026, 9:15:02 PM", Some(1_795_770_902 + 12 * 3600)),
            ("Nov 27, 2026, 12:00:00 AM", Some(1_795_737_600)),
            ("Nov 27, 2026, 12:00:00 PM", Some(1_795_737_600 + 12 * 3600)),
            ("Feb 30, 2026, 1:00:00 AM", None),
            ("Nov 27, 2026, 13:00:00 PM", None),
            ("Nov 27, 2026, 9:15:02", None),
            ("2026-11-27T09:15:02Z", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_cloudtrail(s).map(secs), want, "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn both_forms_agree_and_never_panic(t in 0u64..253_402_300_799, junk in ".{0,40}") {
            let _ = parse_rfc3339(&junk);
            let _ = parse_cloudtrail(&junk);
            // Render t both ways with a reference conversion, then parse back.
            let days = (t / 86_400) as i64;
            let (y, m, d) = civil_from_days(days);
            let (h, mi, s) = ((t % 86_400) / 3600, (t % 3600) / 60, t % 60);
            let rfc = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
            let month = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"][m as usize - 1];
            let (h12, ampm) = match h { 0 => (12, "AM"), 1..=11 => (h, "AM"), 12 => (12, "PM"), _ => (h - 12, "PM") };
            let ct = format!("{month} {d}, {y}, {h12}:{mi:02}:{s:02}\u{202f}{ampm}");
            if y >= 1970 {
                prop_assert_eq!(parse_rfc3339(&rfc).map(secs), Some(t));
                prop_assert_eq!(parse_cloudtrail(&ct).map(secs), Some(t));
            }
        }

        #[test]
        fn formatted_times_parse_back_to_the_millisecond(ms in 0u64..253_402_300_799_999) {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let text = format_rfc3339(t);
            prop_assert_eq!(text.len(), 24);
            let back = parse_rfc3339(&text).map(secs);
            prop_assert_eq!(back, Some(ms / 1000));
            let millis = format!(".{:03}Z", ms % 1000);
            prop_assert!(text.ends_with(&millis), "{} does not end with {}", text, millis);
        }
    }

    #[test]
    fn formatted_times_are_utc_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_770_902_123);
        assert_eq!(format_rfc3339(t), "2026-11-27T09:15:02.123Z");
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 86_399);
        assert_eq!(format_rfc3339(leap), "2024-02-29T23:59:59.000Z");
    }
}
