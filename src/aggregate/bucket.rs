//! Heatmap buckets: day of week (0 = Sunday) and hour of the event time in
//! the user's IANA time zone, DST-correct through chrono-tz.

use crate::domain::Bucket;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

pub fn bucket(at: DateTime<Utc>, tz: Tz) -> Bucket {
    let local = at.with_timezone(&tz);
    Bucket {
        dow: local.weekday().num_days_from_sunday() as u8,
        hour: local.hour() as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn b(utc: &str, tz: Tz) -> (u8, u8) {
        let at = DateTime::parse_from_rfc3339(utc).unwrap().to_utc();
        let x = bucket(at, tz);
        (x.dow, x.hour)
    }

    #[test]
    fn table() {
        let cases = [
            // UTC itself; 2024-03-10 is a Sunday.
            ("2024-03-10T09:30:00Z", Tz::UTC, (0, 9)),
            ("2024-03-16T23:59:59Z", Tz::UTC, (6, 23)),
            // US spring forward, 2024-03-10 02:00 EST → 03:00 EDT.
            ("2024-03-10T06:59:59Z", Tz::America__New_York, (0, 1)),
            ("2024-03-10T07:00:00Z", Tz::America__New_York, (0, 3)),
            // US fall back, 2024-11-03: 01:xx happens twice.
            ("2024-11-03T05:30:00Z", Tz::America__New_York, (0, 1)),
            ("2024-11-03T06:30:00Z", Tz::America__New_York, (0, 1)),
            ("2024-11-03T07:30:00Z", Tz::America__New_York, (0, 2)),
            // Southern hemisphere: Sydney DST ends 2024-04-07 03:00 AEDT → 02:00 AEST.
            ("2024-04-06T15:30:00Z", Tz::Australia__Sydney, (0, 2)),
            ("2024-04-06T16:30:00Z", Tz::Australia__Sydney, (0, 2)),
            ("2024-04-06T17:30:00Z", Tz::Australia__Sydney, (0, 3)),
            // Sydney DST starts 2024-10-06 02:00 AEST → 03:00 AEDT.
            ("2024-10-05T15:59:00Z", Tz::Australia__Sydney, (0, 1)),
            ("2024-10-05T16:00:00Z", Tz::Australia__Sydney, (0, 3)),
            // Day and week boundaries move with the zone.
            ("2024-03-09T23:30:00Z", Tz::Asia__Tokyo, (0, 8)),
            ("2024-03-10T03:00:00Z", Tz::America__Los_Angeles, (6, 19)),
            ("2024-03-16T23:30:00Z", Tz::Pacific__Kiritimati, (0, 13)),
            ("2024-03-17T00:30:00Z", Tz::Pacific__Pago_Pago, (6, 13)),
            // Half-hour offset.
            ("2024-03-10T18:29:00Z", Tz::Asia__Kolkata, (0, 23)),
            ("2024-03-10T18:30:00Z", Tz::Asia__Kolkata, (1, 0)),
        ];
        for (utc, tz, want) in cases {
            assert_eq!(b(utc, tz), want, "{utc} in {tz}");
        }
    }
}
