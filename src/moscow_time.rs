//! Moscow wall-clock time, formatted the one way the app uses everywhere.
//!
//! Moscow has kept a fixed UTC+03:00 with no daylight saving since 2014-10-26, so a fixed
//! offset is exact for every time this app can record and keeps the tz database (hundreds of
//! KB) out of the component.

use chrono::{DateTime, FixedOffset, Timelike, Utc};

/// Moscow's offset from UTC, in seconds.
const MOSCOW_OFFSET_SECS: i32 = 3 * 3600;

pub const UTC_OFFSET: &str = "+03:00";

fn moscow() -> FixedOffset {
    FixedOffset::east_opt(MOSCOW_OFFSET_SECS).expect("+03:00 is a valid offset")
}

/// RFC 3339 to 10 µs with an explicit `+03:00`, e.g. `2026-11-27T08:03:19.12345+03:00`.
/// Always 31 characters for years 0000-9999: with its newline, a 32-byte log record, a size
/// that divides every page (see `record`). The response shows this string, byte for byte.
pub fn format_moscow(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&moscow());
    // A leap second arrives as nanos >= 1e9 and prints as second 60, which RFC 3339 allows.
    let ten_micros = local.nanosecond() % 1_000_000_000 / 10_000;
    format!(
        "{}.{ten_micros:05}{UTC_OFFSET}",
        local.format("%Y-%m-%dT%H:%M:%S")
    )
}

pub fn now_in_moscow() -> String {
    format_moscow(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono::Timelike;

    #[test]
    fn formats_utc_instant_as_moscow_wall_clock_with_offset() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 21, 30, 5).unwrap();
        assert_eq!(format_moscow(at), "2026-11-28T00:30:05.00000+03:00");
    }

    #[test]
    fn keeps_ten_microseconds_and_fixed_width() {
        let at = Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap();
        let s = format_moscow(at);
        assert_eq!(s, "2027-01-15T11:00:00.12345+03:00");
        assert_eq!(s.len(), 31);
        let leap = Utc
            .with_ymd_and_hms(2016, 12, 31, 23, 59, 59)
            .unwrap()
            .with_nanosecond(1_500_000_000)
            .unwrap();
        assert_eq!(format_moscow(leap), "2017-01-01T02:59:60.50000+03:00");
    }

    #[test]
    fn round_trips_through_rfc3339_parsing() {
        let s = now_in_moscow();
        let parsed = DateTime::parse_from_rfc3339(&s).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), MOSCOW_OFFSET_SECS);
        assert!(s.ends_with(UTC_OFFSET));
    }
}
