//! The on-disk record format of `visits.txt`: one visit per fixed-width line.
//!
//! A record is 32 bytes, `2026-11-27T08:03:19.12345+03:00\n`: a Moscow timestamp to 10 µs.
//! 32 divides every page and block size, and every append writes one whole record at the
//! end of a log that is a whole number of valid records, so a record never straddles a page
//! or a block: a live append is never visible half done, and a full volume refuses a record
//! whole. What a power cut leaves past the last synced record (zeros, a record's start, stale
//! bytes) is told apart by `valid_records`: see `file_log` for the recovery rule.
//!
//! This is the only format: a log in any other (the 33-byte records of pre-release builds
//! included) is refused as damaged, never rewritten (CHANGELOG.md).

use chrono::DateTime;

/// `2026-11-27T08:03:19.12345+03:00` plus `\n`.
pub const RECORD_LEN: u64 = 32;
const WIDTH: usize = RECORD_LEN as usize;

/// What each byte of a record must be: `9` a digit, anything else itself.
const SHAPE: &[u8; WIDTH] = b"9999-99-99T99:99:99.99999+03:00\n";

// A record must divide a page, or an append could straddle two and land half.
const _: () = assert!(4096 % RECORD_LEN == 0);

/// Whether `bytes` could be the start of a record: what a crash mid-write leaves.
pub fn is_record_prefix(bytes: &[u8]) -> bool {
    bytes.len() <= WIDTH
        && bytes.iter().zip(SHAPE).all(|(&b, &s)| match s {
            b'9' => b.is_ascii_digit(),
            _ => b == s,
        })
}

/// Whether a log's first bytes are what a power cut before its first sync can leave: the
/// start of a record, or zeros (a length that reached the disk before its data).
pub fn is_cut_leftover_head(head: &[u8]) -> bool {
    let head = &head[..head.len().min(WIDTH)];
    is_record_prefix(head) || head.iter().all(|&b| b == 0)
}

/// One log line for a visit at `timestamp` (a `moscow_time::format_moscow` result).
pub fn encode(timestamp: &str) -> String {
    assert_eq!(timestamp.len() + 1, WIDTH, "a record is {WIDTH} bytes");
    format!("{timestamp}\n")
}

/// The timestamp in one record, or `None` if the bytes are not a well-formed record (a real
/// date and time in Moscow's offset, to 10 µs, and a newline).
pub fn decode(record: &[u8]) -> Option<&str> {
    if record.len() != WIDTH || !is_record_prefix(record) {
        return None;
    }
    let text = std::str::from_utf8(&record[..WIDTH - 1]).ok()?;
    DateTime::parse_from_rfc3339(text).ok()?;
    Some(text)
}

/// How many whole, valid records `bytes` begins with.
pub fn valid_records(bytes: &[u8]) -> u64 {
    bytes
        .chunks(WIDTH)
        .take_while(|r| decode(r).is_some())
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2026-11-27T08:03:19.12345+03:00";

    #[test]
    fn encoded_record_has_the_fixed_width_and_decodes_back() {
        let rec = encode(TS);
        assert_eq!(rec.len() as u64, RECORD_LEN);
        assert_eq!(decode(rec.as_bytes()), Some(TS));
    }

    #[test]
    fn decode_rejects_torn_merged_or_garbled_records() {
        assert_eq!(decode(&encode(TS).as_bytes()[..20]), None);
        let mut no_newline = encode(TS).into_bytes();
        no_newline[31] = b'x';
        assert_eq!(decode(&no_newline), None);
        assert_eq!(decode(b"not-a-timestamp-at-all-but-31ch\n"), None);
        assert_eq!(decode(&[0xff; 32]), None);
        assert_eq!(decode(&[0; 32]), None);
        // Digits in place, but no such day.
        assert_eq!(decode(b"2026-13-45T08:03:19.12345+03:00\n"), None);
    }

    #[test]
    fn valid_records_stop_at_the_first_slot_that_is_not_one() {
        let rec = encode(TS).into_bytes();
        let log = |parts: &[&[u8]]| parts.concat();
        assert_eq!(valid_records(&log(&[&rec, &rec])), 2);
        assert_eq!(valid_records(&log(&[&rec, &rec[..9]])), 1);
        assert_eq!(valid_records(&log(&[&rec, &[0; 32], &rec])), 1);
        assert_eq!(
            valid_records(&log(&[&rec, b"2026-13-45T08:03:19.12345+03:00\n", &rec])),
            1
        );
        assert_eq!(valid_records(b""), 0);
    }

    #[test]
    fn only_a_record_start_or_zeros_pass_for_what_a_cut_leaves_first() {
        let rec = encode(TS);
        for cut in 0..WIDTH {
            assert!(is_record_prefix(&rec.as_bytes()[..cut]));
            assert!(is_cut_leftover_head(&rec.as_bytes()[..cut]));
        }
        assert!(is_cut_leftover_head(&[0; 64]));
        assert!(!is_record_prefix(b"\n"));
        assert!(!is_record_prefix(b"2026-11-27 08"));
        assert!(!is_cut_leftover_head(b"hello, world, this is not a log\n"));
        assert!(!is_cut_leftover_head(b"2026-11-27T08:03:19.123456+03:00\n"));
    }
}
