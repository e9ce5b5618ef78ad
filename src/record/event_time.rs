//! Parsing of event times in every format DESIGN §1 accepts, and of the
//! stream record's `ApproximateCreationDateTime`. Pure functions.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Epoch values below this are seconds, at or above it milliseconds
/// (10^11 s is the year 5138; 10^11 ms is 1973).
const MILLIS_THRESHOLD: u128 = 100_000_000_000;
/// Largest accepted epoch value in milliseconds: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: u128 = 253_402_300_799_999;

/// Parse an event time given as a string: RFC 3339 / ISO 8601 with offset or
/// `Z`, ISO without offset (UTC), or epoch seconds / milliseconds as digits.
pub fn parse_time_str(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty time".into());
    }
    let body = t.strip_prefix('-').unwrap_or(t);
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_epoch(t);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return in_range(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return in_range(dt.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return in_range(Utc.from_utc_datetime(&naive));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return in_range(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)));
    }
    Err(format!(
        "unrecognised time format ({} characters; the raw record has the value)",
        t.chars().count()
    ))
}

/// Parse an epoch given as a DynamoDB number string (seconds or
/// milliseconds, optionally fractional).
pub fn parse_epoch(n: &str) -> Result<DateTime<Utc>, String> {
    let t = n.trim();
    if t.starts_with('-') {
        return Err("negative epoch".to_string());
    }
    let (int_part, frac_part) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    if int_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("not an epoch number".to_string());
    }
    let digits = int_part.trim_start_matches('0');
    if digits.len() > 20 {
        return Err("epoch out of range".to_string());
    }
    let int: u128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| "epoch out of range".to_string())?
    };
    // Fraction to nanoseconds of the unit (first 9 digits are enough).
    let mut frac_nanos: u128 = 0;
    for (i, b) in frac_part.bytes().take(9).enumerate() {
        frac_nanos += u128::from(b - b'0') * 10u128.pow(8 - i as u32);
    }
    let nanos: u128 = if int < MILLIS_THRESHOLD {
        int * 1_000_000_000 + frac_nanos
    } else {
        if int > MAX_MILLIS {
            return Err("epoch out of range".to_string());
        }
        int * 1_000_000 + frac_nanos / 1000
    };
    let secs =
        i64::try_from(nanos / 1_000_000_000).map_err(|_| "epoch out of range".to_string())?;
    let sub = (nanos % 1_000_000_000) as u32;
    match Utc.timestamp_opt(secs, sub) {
        chrono::LocalResult::Single(dt) => in_range(dt),
        _ => Err("epoch out of range".to_string()),
    }
}

/// `ApproximateCreationDateTime` as found in the raw record: epoch seconds,
/// possibly fractional; tolerate milliseconds.
pub fn approximate_creation(v: f64) -> Option<DateTime<Utc>> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let millis = if v < MILLIS_THRESHOLD as f64 {
        (v * 1000.0).round()
    } else {
        v.round()
    };
    if millis > MAX_MILLIS as f64 {
        return None;
    }
    Utc.timestamp_millis_opt(millis as i64).single()
}

fn in_range(dt: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    use chrono::Datelike;
    if dt.timestamp() < 0 || dt.year() > 9999 {
        return Err(format!("time {dt} outside 1970..9999"));
    }
    Ok(dt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn accepted_string_formats() {
        let cases = [
            ("2024-03-10T09:30:00Z", "2024-03-10T09:30:00Z"),
            ("2024-03-10T09:30:00.123Z", "2024-03-10T09:30:00.123Z"),
            ("2024-03-10T10:30:00+01:00", "2024-03-10T09:30:00Z"),
            ("2024-03-10T04:30:00-05:00", "2024-03-10T09:30:00Z"),
            ("2024-03-10T10:30:00+0100", "2024-03-10T09:30:00Z"),
            ("2024-03-10 09:30:00+00:00", "2024-03-10T09:30:00Z"),
            ("2024-03-10T09:30:00", "2024-03-10T09:30:00Z"),
            ("2024-03-10T09:30:00.5", "2024-03-10T09:30:00.5Z"),
            ("2024-03-10 09:30:00", "2024-03-10T09:30:00Z"),
            ("2024-03-10", "2024-03-10T00:00:00Z"),
            ("1710063000", "2024-03-10T09:30:00Z"),
            ("1710063000123", "2024-03-10T09:30:00.123Z"),
            ("1710063000.25", "2024-03-10T09:30:00.25Z"),
            (" 1710063000 ", "2024-03-10T09:30:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_time_str(input), Ok(utc(want)), "input {input:?}");
        }
    }

    #[test]
    fn epoch_numbers() {
        assert_eq!(parse_epoch("1710063000"), Ok(utc("2024-03-10T09:30:00Z")));
        assert_eq!(
            parse_epoch("1710063000123"),
            Ok(utc("2024-03-10T09:30:00.123Z"))
        );
        assert_eq!(
            parse_epoch("1710063000.5"),
            Ok(utc("2024-03-10T09:30:00.5Z"))
        );
        assert_eq!(parse_epoch("0"), Ok(utc("1970-01-01T00:00:00Z")));
    }

    #[test]
    fn rejected_times() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "-5",
            "NaN",
            "1e10",
            "99999999999999999999999999999999999999",
            "253402300800000",
            "10000-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-03-10T09:30:00Z; DROP TABLE x",
        ] {
            assert!(parse_time_str(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse_epoch("-1").is_err());
        assert!(parse_epoch("1.2.3").is_err());
        assert!(parse_epoch("inf").is_err());
    }

    #[test]
    fn approximate_creation_variants() {
        assert_eq!(
            approximate_creation(1_710_063_000.0),
            Some(utc("2024-03-10T09:30:00Z"))
        );
        assert_eq!(
            approximate_creation(1_710_063_000.123),
            Some(utc("2024-03-10T09:30:00.123Z"))
        );
        assert_eq!(
            approximate_creation(1_710_063_000_123.0),
            Some(utc("2024-03-10T09:30:00.123Z"))
        );
        assert_eq!(approximate_creation(0.0), None);
        assert_eq!(approximate_creation(f64::NAN), None);
        assert_eq!(approximate_creation(1e300), None);
    }
}
