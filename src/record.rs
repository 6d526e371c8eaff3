//! The on-disk record format of `visits.txt`: one visit per fixed-width line.
//!
//! A record is 32 bytes, `2026-11-27T08:03:19.12345+03:00\n`: a Moscow timestamp to 10 µs.
//! 32 divides every page and block size, and every append writes one whole record at the
//! end of a log that is a whole number of records, so a record never straddles a page or a
//! block. A live append is therefore never visible half done (the file grows by 32 bytes at
//! once), and a full volume refuses a record whole. Counting is O(1): the count is the length
//! divided by 32; a remainder is a torn tail, left only by a crash mid-write.
//!
//! Logs written before this format have 33-byte records with microseconds (`Format::Legacy`).
//! They are read as they are, served in the 32-byte form, and rewritten once into the current
//! format at their first append (the original kept beside it): see `file_log`.

use chrono::DateTime;

/// `2026-11-27T08:03:19.12345+03:00` plus `\n`.
pub const RECORD_LEN: u64 = 32;
/// The microsecond records of logs written before the 32-byte format.
pub const LEGACY_RECORD_LEN: u64 = 33;

/// What each byte of a record must be: `9` a digit, anything else itself.
const SHAPE: &[u8; RECORD_LEN as usize] = b"9999-99-99T99:99:99.99999+03:00\n";
const LEGACY_SHAPE: &[u8; LEGACY_RECORD_LEN as usize] = b"9999-99-99T99:99:99.999999+03:00\n";

/// The record width of a log, told by its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Current,
    Legacy,
}

impl Format {
    pub fn record_len(self) -> u64 {
        match self {
            Format::Current => RECORD_LEN,
            Format::Legacy => LEGACY_RECORD_LEN,
        }
    }

    fn shape(self) -> &'static [u8] {
        match self {
            Format::Current => SHAPE,
            Format::Legacy => LEGACY_SHAPE,
        }
    }

    /// The format whose record `head` (a log's first bytes) begins with; `None` for bytes
    /// that begin neither. A log shorter than one record is judged by its prefix.
    pub fn of_head(head: &[u8]) -> Option<Format> {
        [Format::Current, Format::Legacy]
            .into_iter()
            .find(|f| f.is_record_prefix(&head[..head.len().min(f.record_len() as usize)]))
    }

    /// Whether `bytes` could be the start of a record of this format: what a torn tail left
    /// by a crash mid-write looks like. Anything else was written by someone else.
    pub fn is_record_prefix(self, bytes: &[u8]) -> bool {
        bytes.len() <= self.shape().len() && fits_shape(bytes, self.shape())
    }

    /// The timestamp in one record of this format, in the current (10 µs) form, or `None` if
    /// the bytes are not a well-formed record.
    pub fn decode(self, record: &[u8]) -> Option<String> {
        if record.len() != self.shape().len() || !fits_shape(record, self.shape()) {
            return None;
        }
        let text = std::str::from_utf8(&record[..record.len() - 1]).ok()?;
        DateTime::parse_from_rfc3339(text).ok()?;
        Some(match self {
            Format::Current => text.to_owned(),
            // Drop the microsecond digit: `...19.123456+03:00` -> `...19.12345+03:00`.
            Format::Legacy => format!("{}{}", &text[..25], &text[26..]),
        })
    }
}

fn fits_shape(bytes: &[u8], shape: &[u8]) -> bool {
    bytes.iter().zip(shape).all(|(&b, &s)| match s {
        b'9' => b.is_ascii_digit(),
        _ => b == s,
    })
}

/// One log line for a visit at `timestamp` (a `moscow_time::format_moscow` result).
pub fn encode(timestamp: &str) -> String {
    debug_assert_eq!(timestamp.len() as u64 + 1, RECORD_LEN);
    format!("{timestamp}\n")
}

/// The timestamp in one current-format record, or `None` if the bytes are not one.
pub fn decode(record: &[u8]) -> Option<String> {
    Format::Current.decode(record)
}

/// What a log of `len` bytes holds: whole records, then possibly a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub format: Format,
    pub records: u64,
    pub torn_bytes: u64,
}

impl Layout {
    pub fn new(format: Format, len: u64) -> Self {
        let width = format.record_len();
        Layout {
            format,
            records: len / width,
            torn_bytes: len % width,
        }
    }

    /// A log in the current format.
    pub fn of_len(len: u64) -> Self {
        Self::new(Format::Current, len)
    }

    /// Bytes covered by whole records: what readers serve, and where a repair cuts back to.
    pub fn whole_len(&self) -> u64 {
        self.records * self.format.record_len()
    }

    /// Byte offset of record `index` (0-based).
    pub fn offset_of(&self, index: u64) -> u64 {
        index * self.format.record_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2026-11-27T08:03:19.12345+03:00";
    const LEGACY: &str = "2026-11-27T08:03:19.123456+03:00\n";

    #[test]
    fn encoded_record_has_the_fixed_width_and_decodes_back() {
        let rec = encode(TS);
        assert_eq!(rec.len() as u64, RECORD_LEN);
        assert_eq!(decode(rec.as_bytes()).as_deref(), Some(TS));
        assert_eq!(4096 % RECORD_LEN, 0, "a record never straddles a page");
    }

    #[test]
    fn layout_counts_whole_records_and_never_the_torn_tail() {
        let torn = Layout::of_len(32 * 3 + 7);
        assert_eq!((torn.records, torn.torn_bytes), (3, 7));
        assert_eq!(torn.whole_len(), 96);
        assert_eq!(Layout::of_len(31).records, 0);
        let legacy = Layout::new(Format::Legacy, 33 * 2);
        assert_eq!((legacy.records, legacy.torn_bytes), (2, 0));
        assert_eq!(legacy.offset_of(1), 33);
    }

    #[test]
    fn decode_rejects_torn_merged_or_garbled_records() {
        assert_eq!(decode(&encode(TS).as_bytes()[..20]), None);
        let mut no_newline = encode(TS).into_bytes();
        no_newline[31] = b'x';
        assert_eq!(decode(&no_newline), None);
        assert_eq!(decode(b"not-a-timestamp-at-all-but-31ch\n"), None);
        assert_eq!(decode(&[0xff; 32]), None);
        // Digits in place, but no such day.
        assert_eq!(decode(b"2026-13-45T08:03:19.12345+03:00\n"), None);
    }

    #[test]
    fn the_format_is_told_by_the_first_record() {
        assert_eq!(
            Format::of_head(encode(TS).as_bytes()),
            Some(Format::Current)
        );
        assert_eq!(Format::of_head(LEGACY.as_bytes()), Some(Format::Legacy));
        assert_eq!(Format::of_head(b"hello, world, this is not a log\n"), None);
        assert_eq!(Format::of_head(b"2026-11"), Some(Format::Current));
    }

    #[test]
    fn legacy_records_read_in_the_current_form() {
        assert_eq!(
            Format::Legacy.decode(LEGACY.as_bytes()).as_deref(),
            Some("2026-11-27T08:03:19.12345+03:00")
        );
        assert_eq!(Format::Current.decode(LEGACY.as_bytes()), None);
    }

    #[test]
    fn only_the_start_of_a_record_counts_as_a_torn_tail() {
        let rec = encode(TS);
        for cut in 0..RECORD_LEN as usize {
            assert!(Format::Current.is_record_prefix(&rec.as_bytes()[..cut]));
        }
        assert!(!Format::Current.is_record_prefix(b"\n"));
        assert!(!Format::Current.is_record_prefix(b"2026-11-27 08"));
        assert!(!Format::Current.is_record_prefix(b"garbage"));
    }
}
