//! `VisitLog` on a directory: `visits.txt` in a WASI preopened dir (or any dir, natively).
//!
//! Concurrency: many instances append at once (one per request). Each visit is one 32-byte
//! `write` on an `O_APPEND` handle, made only when the log is a whole number of valid
//! records, so every record lands at a 32-byte boundary and never straddles a page: the
//! kernel shows it whole or not at all, and a full volume refuses it whole (`record`).
//!
//! Recovery rule, after a crash or a power cut (docs/storage.md):
//! - A 200 waits for `fdatasync`, and `O_APPEND` writes are serialised by the kernel, so the
//!   acknowledged records are a prefix of the log, on disk, all valid. Past the last synced
//!   record a cut may leave anything: zeros, a record's start, stale bytes, valid records that
//!   were never acknowledged, in any order.
//! - The log counts and serves its longest prefix of valid records and nothing after it.
//!   What follows is a leftover: the next append cuts it (under an `O_EXCL` lock file, so two
//!   instances never cut at once) and syncs the cut. No operator, no phantom visit, no
//!   acknowledged visit dropped.
//! - `synced_mark` bounds both the damage a cut can explain and the work: everything before
//!   the mark was synced, so bytes there that are not records were written by something
//!   else. They are never cut: every route answers 503 saying what is wrong and where, and
//!   `/readyz` fails. Each request checks only the records past the mark (the visits in
//!   flight), the mark's own last record and the records it reads or serves.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::append_file::{self, AppendFile, RecordFile};
use crate::durability::SyncMode;
use crate::record::{self, RECORD_LEN};
use crate::synced_mark::{self, MARK_FILE};
use crate::visit_log::{Span, StoreError, Summary, TextChunks, VisitLog};

pub const LOG_FILE: &str = "visits.txt";
const LOCK: &str = ".visits.lock";
/// A lock older than this was left by an instance that died while cutting.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// How long an append waits for another instance's cut before answering 503.
const LOCK_WAIT: Duration = Duration::from_millis(500);
/// Records per read when checking or streaming: few host calls, and the instance's memory
/// stays flat whatever the log size.
const CHUNK_RECORDS: u64 = 2048;

pub struct FileLog {
    dir: PathBuf,
    sync: SyncMode,
}

/// The log as one look found it: `valid` bytes of whole, valid records, then `len - valid`
/// bytes that a crash or cut left (never counted or served; the next append cuts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    len: u64,
    valid: u64,
}

impl Scan {
    fn records(&self) -> u64 {
        self.valid / RECORD_LEN
    }

    fn leftover(&self) -> u64 {
        self.len - self.valid
    }
}

impl FileLog {
    /// The log in `dir`, in the default `SyncMode` (every visit synced).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileLog {
            dir: dir.into(),
            sync: SyncMode::default(),
        }
    }

    pub fn with_sync(self, sync: SyncMode) -> Self {
        FileLog { sync, ..self }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Opens the log for reading, with what it held at that moment. `None` when no visit was
    /// ever recorded.
    fn open_for_read(&self) -> Result<Option<(File, Scan)>, StoreError> {
        self.refuse_special_file()?;
        match File::open(self.log_path()) {
            Ok(mut file) => {
                let scan = self.examine(&mut file)?;
                Ok(Some((file, scan)))
            }
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && self.dir_exists()
                    && !self.is_escaping_link() =>
            {
                Ok(None)
            }
            Err(e) => Err(self.open_error(e)),
        }
    }

    /// A directory, FIFO, socket or device in place of the log is refused before it is
    /// opened: a read-only open of a FIFO waits for a writer, possibly forever. (Appends open
    /// it read-write, which never waits, and `examine` refuses it then.)
    fn refuse_special_file(&self) -> Result<(), StoreError> {
        match fs::metadata(self.log_path()) {
            Ok(m) if m.is_dir() => Err(self.damaged(format_args!("it is a directory"))),
            Ok(m) if !m.is_file() => Err(self.damaged(format_args!("it is not a regular file"))),
            _ => Ok(()),
        }
    }

    fn dir_exists(&self) -> bool {
        fs::metadata(&self.dir).is_ok_and(|m| m.is_dir())
    }

    /// Where the log's valid records end, checked from the synced mark on; `Damaged` when
    /// the log holds what no crash or cut can explain (see the module's recovery rule).
    fn examine(&self, file: &mut dyn RecordFile) -> Result<Scan, StoreError> {
        // The mark first: a live log only grows, and a mark is written only once its length
        // was synced, so a mark read before the length never exceeds it.
        let mark = synced_mark::read(&self.dir).map_err(|e| self.classify(e))?;
        let (regular, len) = file.kind_and_len().map_err(|e| self.classify(e))?;
        if !regular {
            return Err(self.damaged(format_args!("it is not a regular file")));
        }
        if mark > len {
            return Err(self.damaged(format_args!(
                "it is {len} bytes, shorter than the {mark} bytes already synced \
                 ({MARK_FILE}): something other than app-wasm cut or replaced it"
            )));
        }
        if mark == 0 {
            // Nothing synced is known: the log may be what a cut before its first sync
            // left, but not text from elsewhere.
            let mut head = vec![0; len.min(RECORD_LEN) as usize];
            file.read_exact_at(&mut head, 0)
                .map_err(|e| self.classify(e))?;
            if !record::is_cut_leftover_head(&head) {
                return Err(self.damaged(format_args!(
                    "its first bytes are not a visit record: {}",
                    shown(&head)
                )));
            }
        } else {
            self.read_record(file, mark / RECORD_LEN - 1)?;
        }
        let valid = self.valid_from(file, mark, len)?;
        Ok(Scan { len, valid })
    }

    /// The end of the valid records that run from `from` (a record boundary) towards `len`.
    fn valid_from(
        &self,
        file: &mut dyn RecordFile,
        from: u64,
        len: u64,
    ) -> Result<u64, StoreError> {
        let mut buf = vec![0; (CHUNK_RECORDS * RECORD_LEN) as usize];
        let mut at = from;
        while at < len {
            let n = (len - at).min(buf.len() as u64);
            let chunk = &mut buf[..n as usize];
            file.read_exact_at(chunk, at)
                .map_err(|e| self.classify(e))?;
            let valid = record::valid_records(chunk) * RECORD_LEN;
            if valid != n {
                return Ok(at + valid);
            }
            at += n;
        }
        Ok(at)
    }

    fn damaged(&self, what: std::fmt::Arguments) -> StoreError {
        StoreError::Damaged(format!(
            "{}: {what}; app-wasm will not cut or overwrite it: move it aside or repair it",
            self.log_path().display()
        ))
    }

    /// Whether `visits.txt` is a symbolic link that leads nowhere this component may go
    /// (natively: a dangling one; under WASI, out of the preopened dir).
    fn is_escaping_link(&self) -> bool {
        fs::symlink_metadata(self.log_path()).is_ok_and(|m| m.file_type().is_symlink())
            && fs::metadata(self.log_path()).is_err()
    }

    /// Why the log could not be opened: not a file, a link out of the volume, or the volume.
    fn open_error(&self, err: io::Error) -> StoreError {
        match fs::symlink_metadata(self.log_path()) {
            Ok(m) if m.is_dir() => self.damaged(format_args!("it is a directory")),
            Ok(_) if self.is_escaping_link() => self.damaged(format_args!(
                "it is a symbolic link that leads out of the data directory"
            )),
            _ => self.classify(err),
        }
    }

    /// Turns an OS error into what it means for the volume. Under WASI a failed stream write
    /// arrives as a bare EIO for a full *and* a read-only volume alike, so when the error
    /// itself is not telling, a probe file asks the volume directly.
    fn classify(&self, err: io::Error) -> StoreError {
        let detail = err.to_string();
        if !self.dir_exists() {
            return StoreError::Missing(format!("{}: {detail}", self.dir.display()));
        }
        match err.kind() {
            ErrorKind::StorageFull => StoreError::Full(detail),
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => {
                StoreError::ReadOnly(detail)
            }
            _ => match self.probe_write() {
                Err(probed @ (StoreError::Full(_) | StoreError::ReadOnly(_))) => probed,
                _ => StoreError::Io(detail),
            },
        }
    }

    /// Creates, writes one record's worth of bytes to, and removes a probe file. Creating is a
    /// WASI descriptor call, which keeps the precise error code (read-only, not found).
    fn probe_write(&self) -> Result<(), StoreError> {
        let path = self.dir.join(format!(".ready-probe-{:016x}", random_u64()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => StoreError::Missing(format!("{}: {e}", self.dir.display())),
                ErrorKind::StorageFull => StoreError::Full(e.to_string()),
                // Creating an empty file needs no data blocks, so failing here means "no writes".
                _ => StoreError::ReadOnly(e.to_string()),
            })?;
        // The file exists, so the volume takes writes: a failed write now means no room.
        let written = (&file).write_all(&[b'\n'; RECORD_LEN as usize]);
        drop(file);
        let _ = fs::remove_file(&path);
        written.map_err(|e| StoreError::Full(e.to_string()))
    }

    /// Waits until the record just appended is on stable storage, if the mode asks for it;
    /// after the log's first record, its directory entry too. A failed sync is an error: the
    /// record may be in the log, but it was not acknowledged.
    fn make_durable(&self, file: &mut AppendFile, first_record: bool) -> Result<(), StoreError> {
        if self.sync == SyncMode::None {
            return Ok(());
        }
        file.sync_data().map_err(|e| self.classify(e))?;
        if first_record {
            append_file::sync_dir(&self.dir).map_err(|e| self.classify(e))?;
        }
        Ok(())
    }

    fn open_for_append(&self) -> Result<AppendFile, StoreError> {
        append_file::open(&self.dir, LOG_FILE).map_err(|e| self.open_error(e))
    }

    /// Holds the log's lock file; waits up to `LOCK_WAIT` for another holder, then 503.
    fn lock(&self, why: &str) -> Result<LockFile, StoreError> {
        let lock_path = self.dir.join(LOCK);
        let waited_since = SystemTime::now();
        loop {
            match LockFile::acquire(&lock_path) {
                Ok(lock) => return Ok(lock),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if LockFile::is_stale(&lock_path) {
                        let _ = fs::remove_file(&lock_path);
                    } else if waited_since.elapsed().unwrap_or_default() > LOCK_WAIT {
                        return Err(StoreError::Busy(format!(
                            "{why} ({} is held)",
                            lock_path.display()
                        )));
                    } else {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Err(e) => return Err(self.classify(e)),
            }
        }
    }

    /// Cuts what follows the valid records back to the last one, and syncs the cut. Under
    /// the lock the log is examined again: a live append never leaves anything but valid
    /// records (and appends only to a log without a leftover), so a leftover seen there was
    /// left by a crash or a cut, and nothing in it was acknowledged.
    fn cut_leftover(&self) -> Result<(), StoreError> {
        let _lock = self.lock("what a crash left after the last record is being cut")?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.log_path())
            .map_err(|e| self.open_error(e))?;
        let scan = self.examine(&mut file)?;
        if scan.leftover() == 0 {
            return Ok(());
        }
        file.set_len(scan.valid).map_err(|e| self.classify(e))?;
        if self.sync != SyncMode::None {
            file.sync_data().map_err(|e| self.classify(e))?;
        }
        // Every record kept is on disk now: the next look starts there.
        let _ = synced_mark::write(&self.dir, scan.valid);
        Ok(())
    }

    fn read_record(&self, file: &mut dyn RecordFile, index: u64) -> Result<String, StoreError> {
        let mut buf = [0u8; RECORD_LEN as usize];
        let offset = index * RECORD_LEN;
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| self.classify(e))?;
        match record::decode(&buf) {
            Some(ts) => Ok(ts.to_owned()),
            None => Err(self.not_a_record(offset, &buf)),
        }
    }

    /// Damage found among records already counted: `slot` (from `offset`) is not a record.
    fn not_a_record(&self, offset: u64, slot: &[u8]) -> StoreError {
        self.damaged(format_args!(
            "record {} at offset {offset}, before the last synced one, is not a visit \
             record: {}",
            offset / RECORD_LEN,
            shown(&slot[..slot.len().min(RECORD_LEN as usize)])
        ))
    }

    /// Checks every record the log counts, the synced ones too, which a request checks only
    /// where it reads them: what something other than app-wasm wrote among them is found
    /// before any request counts or serves it. One pass in chunks, memory flat; the runner
    /// runs it once per replica at start, before the replica serves its volume.
    pub fn scrub(&self) -> Result<Scrubbed, StoreError> {
        let Some((mut file, scan)) = self.open_for_read()? else {
            return Ok(Scrubbed::default());
        };
        let mut buf = vec![0; (CHUNK_RECORDS * RECORD_LEN) as usize];
        let mut at = 0;
        while at < scan.valid {
            let chunk = &mut buf[..(scan.valid - at).min(CHUNK_RECORDS * RECORD_LEN) as usize];
            file.read_exact_at(chunk, at)
                .map_err(|e| self.classify(e))?;
            let sound = record::valid_records(chunk) * RECORD_LEN;
            if sound != chunk.len() as u64 {
                return Err(self.not_a_record(at + sound, &chunk[sound as usize..]));
            }
            at += sound;
        }
        Ok(Scrubbed {
            records: scan.records(),
            leftover_bytes: scan.leftover(),
        })
    }
}

/// What a scrub found: every counted record sound, and what a cut left after them (the next
/// visit cuts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scrubbed {
    pub records: u64,
    pub leftover_bytes: u64,
}

impl VisitLog for FileLog {
    fn append(&self, timestamp: &str) -> Result<(), StoreError> {
        let line = record::encode(timestamp);
        // At most: cut what a crash left, then append.
        for _ in 0..2 {
            let mut file = self.open_for_append()?;
            let scan = self.examine(&mut file)?;
            if scan.leftover() != 0 {
                self.cut_leftover()?;
                continue;
            }
            // One write call for the whole record, at a record boundary: it never straddles
            // a page, so it lands whole or not at all.
            match file.append(line.as_bytes()) {
                Ok(n) if n == line.len() => {}
                Ok(n) => {
                    return Err(StoreError::Full(format!(
                        "only {n} of {} bytes fit",
                        line.len()
                    )))
                }
                Err(e) => return Err(self.classify(e)),
            }
            self.make_durable(&mut file, scan.len == 0)?;
            // The log's `scan.len` bytes were there before this record, which is at or after
            // them: the sync covered both (under `none`, "written" stands for "synced"). A mark
            // that cannot be written only makes the next look longer.
            let _ = synced_mark::write(&self.dir, scan.len + RECORD_LEN);
            return Ok(());
        }
        Err(StoreError::Busy(
            "the log kept changing under this append".into(),
        ))
    }

    fn summary(&self) -> Result<Summary, StoreError> {
        let Some((mut file, scan)) = self.open_for_read()? else {
            return Ok(Summary {
                sync: self.sync,
                ..Summary::default()
            });
        };
        let (first, last) = match scan.records() {
            0 => (None, None),
            n => (
                Some(self.read_record(&mut file, 0)?),
                Some(self.read_record(&mut file, n - 1)?),
            ),
        };
        Ok(Summary {
            visits: scan.records(),
            first,
            last,
            log_bytes: scan.len,
            torn_bytes: scan.leftover(),
            sync: self.sync,
        })
    }

    fn check_ready(&self) -> Result<(), StoreError> {
        if !self.dir_exists() {
            return Err(StoreError::Missing(format!(
                "{} is not a directory this component can see",
                self.dir.display()
            )));
        }
        // The log as an append would find it: a regular file whose records are sound up to
        // any leftover of a crash (which the next append cuts).
        match OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.log_path())
        {
            Ok(mut file) => {
                let scan = self.examine(&mut file)?;
                if scan.records() > 0 {
                    self.read_record(&mut file, 0)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound && !self.is_escaping_link() => {}
            Err(e) => return Err(self.open_error(e)),
        }
        self.probe_write()
    }

    fn text_chunks(&self, span: Span) -> Result<TextChunks<'_>, StoreError> {
        let Some((mut file, scan)) = self.open_for_read()? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let skip = span.skip.min(scan.records());
        let mut remaining = span.records.min(scan.records() - skip);
        let mut at = skip * RECORD_LEN;
        file.seek(SeekFrom::Start(at))
            .map_err(|e| self.classify(e))?;
        Ok(Box::new(std::iter::from_fn(move || {
            let n = remaining.min(CHUNK_RECORDS);
            if n == 0 {
                return None;
            }
            let mut chunk = vec![0; (n * RECORD_LEN) as usize];
            let checked = match file.read_exact(&mut chunk) {
                Ok(()) => match record::valid_records(&chunk) {
                    ok if ok == n => Ok(chunk),
                    ok => Err(self
                        .not_a_record(at + ok * RECORD_LEN, &chunk[(ok * RECORD_LEN) as usize..])),
                },
                Err(e) => Err(self.classify(e)),
            };
            // Served only once checked: an error ends the stream (the response is aborted).
            remaining = if checked.is_ok() { remaining - n } else { 0 };
            at += n * RECORD_LEN;
            Some(checked)
        })))
    }

    fn visits_before(&self, moments: &[String]) -> Result<Vec<u64>, StoreError> {
        let Some((mut file, scan)) = self.open_for_read()? else {
            return Ok(vec![0; moments.len()]);
        };
        // Moments ascend, so each search starts where the last one ended. Every record read
        // is checked: damage a search lands on is an error, never a count.
        let mut low = 0;
        let mut counts = Vec::with_capacity(moments.len());
        for moment in moments {
            let mut high = scan.records();
            while low < high {
                let mid = low + (high - low) / 2;
                if self.read_record(&mut file, mid)? < *moment {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            counts.push(low);
        }
        Ok(counts)
    }
}

/// Bytes as a person can read them in an error message: at most 40, escaped.
fn shown(bytes: &[u8]) -> String {
    let text: String = bytes
        .iter()
        .take(40)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    format!("\"{text}\"{}", if bytes.len() > 40 { "..." } else { "" })
}

/// An `O_EXCL`-created file: the only mutual exclusion WASI offers between instances.
struct LockFile(PathBuf);

impl LockFile {
    fn acquire(path: &Path) -> io::Result<LockFile> {
        OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(LockFile(path.to_owned()))
    }

    fn is_stale(path: &Path) -> bool {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() > STALE_LOCK)
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A random name component. `RandomState` is seeded from the OS (WASI `random` in the guest),
/// which spares the component a RNG crate.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text form of `records` records after the first `skip`, as served.
    fn served(log: &FileLog, skip: u64, records: u64) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        for chunk in log.text_chunks(Span { skip, records })? {
            out.extend(chunk?);
        }
        Ok(out)
    }

    const TS: &str = "2026-11-27T08:03:19.12345+03:00";
    const TS2: &str = "2026-11-27T08:03:20.00001+03:00";

    fn raw_append(log: &FileLog, bytes: &[u8]) {
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log.log_path())
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    fn visits(log: &FileLog) -> u64 {
        log.summary().unwrap().visits
    }

    #[test]
    fn visits_before_a_moment_are_found_by_binary_search_and_damage_is_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path()).with_sync(SyncMode::None);
        let at = |h: u32, m: u32| format!("2026-11-27T{h:02}:{m:02}:00.00000+03:00");
        assert_eq!(log.visits_before(&[at(8, 0)]).unwrap(), [0], "no log yet");
        // 3 visits at 06:xx, none at 07:xx, 5 at 08:xx.
        for (h, m) in [
            (6, 1),
            (6, 30),
            (6, 59),
            (8, 0),
            (8, 0),
            (8, 10),
            (8, 20),
            (8, 59),
        ] {
            log.append(&at(h, m)).unwrap();
        }
        let bounds: Vec<String> = (5..=9).map(|h| at(h, 0)).collect();
        assert_eq!(log.visits_before(&bounds).unwrap(), [0, 0, 3, 3, 8]);
        // A moment equal to a visit counts only the visits strictly before it.
        assert_eq!(log.visits_before(&[at(8, 10)]).unwrap(), [5]);
        // A record the search lands on that is not one is damage, never a count.
        let mut bytes = fs::read(log.log_path()).unwrap();
        bytes[3 * 32..4 * 32].copy_from_slice(&[b'x'; 32]);
        fs::write(log.log_path(), &bytes).unwrap();
        let err = log.visits_before(&[at(8, 0)]).unwrap_err();
        assert!(matches!(err, StoreError::Damaged(_)), "{err}");
    }

    #[test]
    fn appends_count_and_report_first_and_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        assert_eq!(log.summary().unwrap(), Summary::default());
        log.append(TS).unwrap();
        log.append(TS2).unwrap();
        let s = log.summary().unwrap();
        assert_eq!((s.visits, s.log_bytes, s.torn_bytes), (2, 64, 0));
        assert_eq!(s.first.as_deref(), Some(TS));
        assert_eq!(s.last.as_deref(), Some(TS2));
        let text = fs::read_to_string(log.log_path()).unwrap();
        assert_eq!(text, format!("{TS}\n{TS2}\n"));
        assert_eq!(served(&log, 0, 2).unwrap(), text.as_bytes());
        assert_eq!(served(&log, 0, 1).unwrap(), format!("{TS}\n").as_bytes());
        assert_eq!(served(&log, 1, 1).unwrap(), format!("{TS2}\n").as_bytes());
        assert_eq!(synced_mark::read(dir.path()).unwrap(), 64);
    }

    /// What a cut or crash leaves past the last synced record, each after two synced visits:
    /// never counted or served, the log ready, and cut by the next visit.
    #[test]
    fn whatever_a_cut_leaves_after_the_synced_records_is_never_counted_and_is_cut() {
        let rec = |ts: &str| record::encode(ts).into_bytes();
        let leftovers: [(&str, Vec<u8>); 6] = [
            ("a record's start", TS2.as_bytes()[..11].to_vec()),
            ("zeros, its new length kept", vec![0; 64]),
            (
                "zeros, then a record prefix",
                [&[0u8; 32][..], &TS2.as_bytes()[..15]].concat(),
            ),
            (
                "stale bytes",
                b"#!/bin/sh\nrm -rf --no-preserve-root\n".to_vec(),
            ),
            (
                "zeros, then a valid record",
                [vec![0; 32], rec(TS2)].concat(),
            ),
            ("an impossible date", rec("2026-13-45T08:03:19.12345+03:00")),
        ];
        for (what, leftover) in leftovers {
            let dir = tempfile::tempdir().unwrap();
            let log = FileLog::new(dir.path());
            log.append(TS).unwrap();
            log.append(TS).unwrap();
            raw_append(&log, &leftover);
            let s = log.summary().unwrap();
            assert_eq!(
                (s.visits, s.torn_bytes),
                (2, leftover.len() as u64),
                "{what}"
            );
            assert_eq!(s.last.as_deref(), Some(TS), "{what}");
            assert_eq!(served(&log, 0, 10).unwrap(), rec(TS).repeat(2), "{what}");
            log.check_ready().unwrap();

            log.append(TS2).unwrap();
            let expected = [rec(TS), rec(TS), rec(TS2)].concat();
            assert_eq!(fs::read(log.log_path()).unwrap(), expected, "{what}");
            assert_eq!(synced_mark::read(dir.path()).unwrap(), 96, "{what}");
            assert!(!dir.path().join(LOCK).exists());
        }
    }

    #[test]
    fn a_log_whose_first_sync_was_cut_starts_again_and_text_is_refused() {
        for head in [&[0u8; 48][..], &TS.as_bytes()[..7]] {
            let dir = tempfile::tempdir().unwrap();
            let log = FileLog::new(dir.path());
            raw_append(&log, head);
            assert_eq!(visits(&log), 0);
            log.append(TS2).unwrap();
            assert_eq!(
                fs::read(log.log_path()).unwrap(),
                record::encode(TS2).as_bytes()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        fs::write(log.log_path(), "hello, this is not a visits log\n").unwrap();
        assert!(matches!(log.append(TS), Err(StoreError::Damaged(_))));
        assert!(matches!(log.check_ready(), Err(StoreError::Damaged(_))));
        // The 33-byte records of pre-release builds are another format: refused, not cut.
        fs::write(log.log_path(), "2026-11-27T08:03:19.123456+03:00\n").unwrap();
        assert!(matches!(log.append(TS), Err(StoreError::Damaged(_))));
        assert_eq!(fs::read(log.log_path()).unwrap().len(), 33);
    }

    /// Bytes that are not records before the synced mark cannot be a cut's: every path
    /// refuses, naming the offset, nothing is cut, and the text form is an error, not short.
    #[test]
    fn junk_inside_the_synced_records_is_damage_that_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        for _ in 0..4 {
            log.append(TS).unwrap();
        }
        // Two slots in the middle and then the last synced record overwritten by hand.
        let mut bytes = fs::read(log.log_path()).unwrap();
        bytes[32..96].copy_from_slice(&[b'x'; 64]);
        fs::write(log.log_path(), &bytes).unwrap();
        let err = served(&log, 0, 4).unwrap_err();
        assert!(err.to_string().contains("offset 32"), "{err}");
        assert!(log.summary().is_ok(), "first and last records are sound");
        bytes[96..128].copy_from_slice(b"2026-13-45T08:03:19.12345+03:00\n");
        fs::write(log.log_path(), &bytes).unwrap();
        for err in [
            log.append(TS).unwrap_err(),
            log.check_ready().unwrap_err(),
            log.summary().unwrap_err(),
            served(&log, 0, 1).unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::Damaged(_)), "{err}");
            assert!(err.to_string().contains("offset 96"), "{err}");
        }
        assert_eq!(fs::read(log.log_path()).unwrap(), bytes, "nothing was cut");
    }

    /// Junk among the synced records that no request reads (neither the first, nor the mark's
    /// last, nor past the mark) is what only the scrub finds; a cut's leftover is not damage.
    #[test]
    fn the_scrub_finds_junk_no_request_reads_and_passes_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        assert_eq!(log.scrub().unwrap(), Scrubbed::default());
        let records = CHUNK_RECORDS + 5;
        for _ in 0..records {
            log.append(TS).unwrap();
        }
        raw_append(&log, &[0; 40]);
        let sound = Scrubbed {
            records,
            leftover_bytes: 40,
        };
        assert_eq!(log.scrub().unwrap(), sound);
        // In the second chunk, so the offset is counted across chunks.
        let at = (CHUNK_RECORDS + 2) * RECORD_LEN;
        let mut bytes = fs::read(log.log_path()).unwrap();
        bytes[at as usize..][..RECORD_LEN as usize].copy_from_slice(&[b'x'; 32]);
        fs::write(log.log_path(), &bytes).unwrap();
        assert_eq!(visits(&log), records, "no request path reads that record");
        let err = log.scrub().unwrap_err();
        assert!(matches!(err, StoreError::Damaged(_)), "{err}");
        let named = format!("record {} at offset {at}", CHUNK_RECORDS + 2);
        assert!(err.to_string().contains(&named), "{err}");
        assert_eq!(fs::read(log.log_path()).unwrap(), bytes, "nothing was cut");
    }

    #[test]
    fn a_log_shorter_than_its_synced_mark_was_cut_by_someone_else() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        log.append(TS).unwrap();
        log.append(TS).unwrap();
        File::options()
            .write(true)
            .open(log.log_path())
            .unwrap()
            .set_len(32)
            .unwrap();
        let err = log.append(TS).unwrap_err();
        assert!(
            err.to_string().contains("shorter than the 64 bytes"),
            "{err}"
        );
        assert!(matches!(log.check_ready(), Err(StoreError::Damaged(_))));
    }

    #[test]
    fn a_lost_or_torn_mark_means_checking_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        for _ in 0..3 {
            log.append(TS).unwrap();
        }
        fs::write(dir.path().join(MARK_FILE), [0u8; 30]).unwrap();
        raw_append(&log, &[0; 32]);
        assert_eq!(visits(&log), 3);
        fs::remove_file(dir.path().join(MARK_FILE)).unwrap();
        assert_eq!(visits(&log), 3);
        log.append(TS2).unwrap();
        assert_eq!(
            (visits(&log), synced_mark::read(dir.path()).unwrap()),
            (4, 128)
        );
    }

    #[test]
    fn a_fifo_for_a_log_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let made = std::process::Command::new("mkfifo")
            .arg(log.log_path())
            .status()
            .unwrap();
        assert!(made.success());
        // Each would block forever in open() if it opened the FIFO read-only.
        let refused = |r: Result<(), StoreError>| match r {
            Err(StoreError::Damaged(m)) => m.contains("not a regular file"),
            _ => false,
        };
        assert!(refused(log.summary().map(drop)));
        assert!(refused(log.check_ready()));
        assert!(refused(log.append(TS)));
        assert!(refused(log.text_chunks(Span::default()).map(drop)));
    }

    #[test]
    fn a_directory_or_a_link_out_of_the_volume_is_not_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        fs::create_dir(log.log_path()).unwrap();
        assert!(matches!(log.append(TS), Err(StoreError::Damaged(_))));
        assert!(matches!(log.check_ready(), Err(StoreError::Damaged(_))));
        fs::remove_dir(log.log_path()).unwrap();
        std::os::unix::fs::symlink("/nonexistent/visits.txt", log.log_path()).unwrap();
        let err = log.check_ready().unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn stale_lock_is_broken_and_a_fresh_one_makes_a_cut_busy() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        fs::write(log.log_path(), &TS.as_bytes()[..5]).unwrap();
        let lock = dir.path().join(LOCK);
        fs::write(&lock, "").unwrap();
        assert!(matches!(log.append(TS), Err(StoreError::Busy(_))));
        assert_eq!(fs::read(log.log_path()).unwrap(), &TS.as_bytes()[..5]);

        let old = SystemTime::now() - 2 * STALE_LOCK;
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        log.append(TS).unwrap();
        assert_eq!(
            fs::read_to_string(log.log_path()).unwrap(),
            format!("{TS}\n")
        );
    }

    #[test]
    fn missing_dir_is_reported_as_missing_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path().join("absent"));
        assert!(matches!(log.append(TS), Err(StoreError::Missing(_))));
        assert!(matches!(log.summary(), Err(StoreError::Missing(_))));
        assert!(matches!(log.check_ready(), Err(StoreError::Missing(_))));
    }

    #[test]
    fn ready_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        FileLog::new(dir.path()).check_ready().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
