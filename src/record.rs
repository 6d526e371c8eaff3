//! The on-disk record format of `visits.txt`: one visit per fixed-width line.
//!
//! Fixed width is what makes counting O(1): the count is the file length divided by the
//! record length, and any remainder is a torn tail (a write cut short by a crash or a full
//! volume) that was never acknowledged and is never counted.

use chrono::DateTime;

/// `2026-11-27T08:03:19.123456+03:00` plus `\n`.
pub const RECORD_LEN: u64 = 33;

/// One log line for a visit at `timestamp` (a `moscow_time::format_moscow` result).
pub fn encode(timestamp: &str) -> String {
    debug_assert_eq!(timestamp.len() as u64 + 1, RECORD_LEN);
    format!("{timestamp}\n")
}

/// What a log of `len` bytes holds: whole records, then possibly a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub records: u64,
    pub torn_bytes: u64,
}

impl Layout {
    pub fn of_len(len: u64) -> Self {
        Layout {
            records: len / RECORD_LEN,
            torn_bytes: len % RECORD_LEN,
        }
    }

    /// Bytes covered by whole records: what readers serve, and where a repair cuts back to.
    pub fn whole_len(&self) -> u64 {
        self.records * RECORD_LEN
    }

    /// Byte offset of record `index` (0-based).
    pub fn offset_of(index: u64) -> u64 {
        index * RECORD_LEN
    }
}

/// The timestamp in one record, or `None` if the bytes are not a well-formed record.
pub fn decode(record: &[u8]) -> Option<&str> {
    let (line, newline) = record.split_at_checked(RECORD_LEN as usize - 1)?;
    if newline != b"\n" {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    DateTime::parse_from_rfc3339(text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2026-11-27T08:03:19.123456+03:00";

    #[test]
    fn encoded_record_has_the_fixed_width_and_decodes_back() {
        let rec = encode(TS);
        assert_eq!(rec.len() as u64, RECORD_LEN);
        assert_eq!(decode(rec.as_bytes()), Some(TS));
    }

    #[test]
    fn layout_counts_whole_records_and_never_the_torn_tail() {
        assert_eq!(
            Layout::of_len(0),
            Layout {
                records: 0,
                torn_bytes: 0
            }
        );
        assert_eq!(
            Layout::of_len(33 * 3),
            Layout {
                records: 3,
                torn_bytes: 0
            }
        );
        let torn = Layout::of_len(33 * 3 + 7);
        assert_eq!(
            torn,
            Layout {
                records: 3,
                torn_bytes: 7
            }
        );
        assert_eq!(torn.whole_len(), 99);
        assert_eq!(Layout::of_len(32).records, 0);
    }

    #[test]
    fn decode_rejects_torn_merged_or_garbled_records() {
        assert_eq!(decode(&encode(TS).as_bytes()[..20]), None);
        let mut no_newline = encode(TS).into_bytes();
        no_newline[32] = b'x';
        assert_eq!(decode(&no_newline), None);
        assert_eq!(decode(b"not-a-timestamp-at-all-but-32-ch\n"), None);
        assert_eq!(decode(&[0xff; 33]), None);
    }
}
