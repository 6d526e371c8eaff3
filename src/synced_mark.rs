//! `.visits.synced`: a length of `visits.txt` whose every byte is a valid record that was on
//! stable storage when the mark was written (the recovery rule in `file_log` stands on it).
//!
//! An append writes it after its `fdatasync` returned, with the length the log had before
//! the append plus the append's own record: all of that was synced by then. The mark itself
//! is never synced; it reaches the disk with the next writeback, so what a power cut leaves
//! of it is an older mark, which is still true, or a torn one, which the checksum refuses
//! (then the rule falls back to 0, the only mark that needs nothing on disk). Concurrent
//! appends may write their marks in any order: each is true, the smaller ones just say less.

use std::fs::OpenOptions;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const MARK_FILE: &str = ".visits.synced";
/// `00000000000000000096 5d2f1c0a\n`: the length (20 digits) and its FNV-1a checksum.
const MARK_LEN: usize = 30;

/// The mark's bytes for `len`; always `MARK_LEN` long, so it is overwritten in place.
pub fn encode(len: u64) -> [u8; MARK_LEN] {
    let digits = format!("{len:020}");
    let text = format!("{digits} {:08x}\n", fnv1a(digits.as_bytes()));
    text.as_bytes()
        .try_into()
        .expect("20 digits, a space, 8 hex digits, a newline")
}

/// The length in a mark, or `None` for bytes that are not a whole, intact mark.
pub fn decode(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes.get(..MARK_LEN)?).ok()?;
    let (digits, rest) = text.split_at(20);
    let check = rest.strip_prefix(' ')?.strip_suffix('\n')?;
    let check = u32::from_str_radix(check, 16).ok()?;
    (digits.bytes().all(|b| b.is_ascii_digit()) && check == fnv1a(digits.as_bytes()))
        .then(|| digits.parse().ok())?
}

/// The mark in `dir`: 0 when there is none or it is not intact.
pub fn read(dir: &Path) -> io::Result<u64> {
    let mut bytes = [0; MARK_LEN];
    match OpenOptions::new().read(true).open(dir.join(MARK_FILE)) {
        Ok(mut file) => match file.read_exact(&mut bytes) {
            Ok(()) => Ok(decode(&bytes).unwrap_or(0)),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Overwrites the mark in `dir` in place (no truncation: a reader never sees it empty).
pub fn write(dir: &Path, len: u64) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(MARK_FILE))?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&encode(len))
}

/// FNV-1a, 32 bits: enough to refuse a torn or zeroed mark, and no crate for it.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_a_torn_or_zeroed_one_is_refused() {
        for len in [0, 32, 96, 1 << 40] {
            assert_eq!(decode(&encode(len)), Some(len));
        }
        let old = encode(960);
        let new = encode(1024);
        for cut in 1..MARK_LEN {
            // A new mark over an old one, cut after `cut` bytes: never a length nobody wrote.
            let torn = [&new[..cut], &old[cut..]].concat();
            let got = decode(&torn);
            assert!(
                got.is_none() || got == Some(960) || got == Some(1024),
                "{got:?}"
            );
        }
        assert_eq!(decode(&[0; MARK_LEN]), None);
        assert_eq!(decode(b"short"), None);
    }

    #[test]
    fn a_missing_mark_reads_as_zero_and_writes_overwrite_in_place() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), 0);
        write(dir.path(), 4096).unwrap();
        write(dir.path(), 64).unwrap();
        assert_eq!(read(dir.path()).unwrap(), 64);
        let on_disk = std::fs::read(dir.path().join(MARK_FILE)).unwrap();
        assert_eq!(on_disk.len(), MARK_LEN);
    }
}
