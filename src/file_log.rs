//! `VisitLog` on a directory: `visits.txt` in a WASI preopened dir (or any dir, natively).
//!
//! Concurrency: many instances append at once (one per request). Each visit is one 32-byte
//! `write` on an `O_APPEND` handle, made only when the log is a whole number of records, so
//! every record lands at a 32-byte boundary and never straddles a page: the kernel shows it
//! whole or not at all, and a full volume refuses it whole (`record`). No timing assumption
//! is involved, and nothing is ever cut while an append is in flight:
//!
//! - a torn tail (a remainder that is the start of a record) exists only after a crash
//!   mid-write; it was never acknowledged, and the next append cuts it, under an `O_EXCL`
//!   lock file so two instances never cut at once;
//! - anything else (a first record or a tail that is not a record: an outside edit) is
//!   never cut: appends answer 503 saying what is wrong and where, `/readyz` fails, and
//!   readers stop before bytes that are not records;
//! - a log in the 33-byte format of earlier versions is read as it is, and rewritten once
//!   into 32-byte records at its first append, the original kept as `visits.txt.v1`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::append_file::{self, AppendFile, RecordFile};
use crate::durability::SyncMode;
use crate::record::{self, Format, Layout, LEGACY_RECORD_LEN, RECORD_LEN};
use crate::visit_log::{Span, StoreError, Summary, VisitLog};

pub const LOG_FILE: &str = "visits.txt";
/// Where a legacy log is kept when it is rewritten in the current format.
pub const LEGACY_BACKUP: &str = "visits.txt.v1";
const LOCK: &str = ".visits.lock";
const MIGRATING: &str = ".visits.txt.migrating";
/// A lock older than this was left by an instance that died while cutting or migrating.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// How long an append waits for another instance's cut or migration before answering 503.
const LOCK_WAIT: Duration = Duration::from_millis(500);
/// Streaming chunk: few host calls, and the instance's memory stays flat whatever the log size.
const TEXT_CHUNK_RECORDS: u64 = 2048;

pub struct FileLog {
    dir: PathBuf,
    sync: SyncMode,
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

    /// Opens the log for reading, with its layout at that moment. `None` when no visit was
    /// ever recorded.
    pub fn open_for_read(&self) -> Result<Option<(File, Layout)>, StoreError> {
        self.refuse_special_file()?;
        match File::open(self.log_path()) {
            Ok(mut file) => {
                let layout = self.inspect(&mut file)?;
                Ok(Some((file, layout)))
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

    /// A FIFO, socket or device in place of the log is refused before it is opened: a
    /// read-only open of a FIFO waits for a writer, possibly forever. (Appends open it
    /// read-write, which never waits, and `inspect` refuses it then.)
    fn refuse_special_file(&self) -> Result<(), StoreError> {
        match fs::metadata(self.log_path()) {
            Ok(m) if !m.is_file() && !m.is_dir() => {
                Err(self.damaged(format_args!("it is not a regular file")))
            }
            _ => Ok(()),
        }
    }

    fn dir_exists(&self) -> bool {
        fs::metadata(&self.dir).is_ok_and(|m| m.is_dir())
    }

    /// The log's format and layout; `Damaged` if it is not a regular file or its first
    /// record is not a visit record of either format.
    fn inspect(&self, file: &mut dyn RecordFile) -> Result<Layout, StoreError> {
        let (regular, len) = file.kind_and_len().map_err(|e| self.classify(e))?;
        if !regular {
            return Err(self.damaged(format_args!("it is not a regular file")));
        }
        if len == 0 {
            return Ok(Layout::of_len(0));
        }
        let mut head = vec![0; len.min(LEGACY_RECORD_LEN) as usize];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| self.classify(e))?;
        let format = Format::of_head(&head).ok_or_else(|| {
            self.damaged(format_args!(
                "its first bytes are not a visit record: {}",
                shown(&head)
            ))
        })?;
        Ok(Layout::new(format, len))
    }

    /// The remainder after the whole records must be the start of a record (a crash
    /// mid-write); anything else was written by something other than app-wasm.
    fn check_tail(&self, file: &mut dyn RecordFile, layout: &Layout) -> Result<(), StoreError> {
        if layout.torn_bytes == 0 {
            return Ok(());
        }
        let mut tail = vec![0; layout.torn_bytes as usize];
        file.read_exact_at(&mut tail, layout.whole_len())
            .map_err(|e| self.classify(e))?;
        if layout.format.is_record_prefix(&tail) {
            Ok(())
        } else {
            Err(self.damaged(format_args!(
                "the {} bytes at offset {} are not the start of a record: {}",
                tail.len(),
                layout.whole_len(),
                shown(&tail)
            )))
        }
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

    /// Cuts a torn tail back to the last whole record. Under the lock the length is read
    /// again: a live append never leaves a torn length (records never straddle a page), so a
    /// torn length seen there is a crash's leftover, and nothing after it was acknowledged.
    fn cut_torn_tail(&self) -> Result<(), StoreError> {
        let _lock = self.lock("a torn tail is being cut")?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.log_path())
            .map_err(|e| self.open_error(e))?;
        let layout = self.inspect(&mut file)?;
        if layout.torn_bytes == 0 {
            return Ok(());
        }
        self.check_tail(&mut file, &layout)?;
        file.set_len(layout.whole_len())
            .map_err(|e| self.classify(e))
    }

    /// Rewrites a legacy (33-byte) log into 32-byte records, once. The original stays as
    /// `visits.txt.v1`; the new log replaces `visits.txt` in one rename, so every instance
    /// opens either the old file (and comes here instead of appending) or the new one.
    fn migrate_legacy(&self) -> Result<(), StoreError> {
        let _lock = self.lock("the log is being rewritten in the 32-byte format")?;
        let original = fs::read(self.log_path()).map_err(|e| self.open_error(e))?;
        if Format::of_head(&original) != Some(Format::Legacy) {
            return Ok(()); // another instance did it
        }
        let layout = Layout::new(Format::Legacy, original.len() as u64);
        let mut converted = Vec::with_capacity((layout.records * RECORD_LEN) as usize);
        for (i, rec) in original[..layout.whole_len() as usize]
            .chunks(LEGACY_RECORD_LEN as usize)
            .enumerate()
        {
            let ts = Format::Legacy.decode(rec).ok_or_else(|| {
                self.damaged(format_args!(
                    "record {i} at offset {} is not a visit record: {}",
                    layout.offset_of(i as u64),
                    shown(rec)
                ))
            })?;
            converted.extend_from_slice(record::encode(&ts).as_bytes());
        }
        let tail = &original[layout.whole_len() as usize..];
        if !Format::Legacy.is_record_prefix(tail) {
            return Err(self.damaged(format_args!(
                "the {} bytes at offset {} are not the start of a record",
                tail.len(),
                layout.whole_len()
            )));
        }
        self.keep_legacy(&original)?;
        let staging = self.dir.join(MIGRATING);
        let write = || -> io::Result<()> {
            let mut f = File::create(&staging)?;
            f.write_all(&converted)?;
            f.sync_all()?;
            fs::rename(&staging, self.log_path())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&staging);
            self.classify(e)
        })
    }

    /// Writes the legacy log's bytes to `visits.txt.v1` (or `.v1.N` if that is taken).
    fn keep_legacy(&self, original: &[u8]) -> Result<(), StoreError> {
        for n in 0.. {
            let name = match n {
                0 => LEGACY_BACKUP.to_owned(),
                n => format!("{LEGACY_BACKUP}.{n}"),
            };
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.dir.join(name))
            {
                Ok(mut f) => {
                    return f
                        .write_all(original)
                        .and_then(|_| f.sync_all())
                        .map_err(|e| self.classify(e))
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.classify(e)),
            }
        }
        unreachable!("0.. never ends")
    }

    fn read_record(
        &self,
        file: &mut dyn RecordFile,
        layout: &Layout,
        index: u64,
    ) -> Result<String, StoreError> {
        let mut buf = vec![0u8; layout.format.record_len() as usize];
        file.read_exact_at(&mut buf, layout.offset_of(index))
            .map_err(|e| self.classify(e))?;
        layout.format.decode(&buf).ok_or_else(|| {
            self.damaged(format_args!(
                "record {index} at offset {} is not a visit record: {}",
                layout.offset_of(index),
                shown(&buf)
            ))
        })
    }
}

impl VisitLog for FileLog {
    fn append(&self, timestamp: &str) -> Result<(), StoreError> {
        let line = record::encode(timestamp);
        // At most: migrate a legacy log, cut a torn tail, append.
        for _ in 0..3 {
            let mut file = self.open_for_append()?;
            let layout = self.inspect(&mut file)?;
            if layout.format == Format::Legacy {
                self.migrate_legacy()?;
                continue;
            }
            if layout.torn_bytes != 0 {
                self.check_tail(&mut file, &layout)?;
                self.cut_torn_tail()?;
                continue;
            }
            // One write call for the whole record, at a record boundary: it never straddles
            // a page, so it lands whole or not at all.
            return match file.append(line.as_bytes()) {
                Ok(n) if n == line.len() => self.make_durable(&mut file, layout.whole_len() == 0),
                Ok(n) => Err(StoreError::Full(format!(
                    "only {n} of {} bytes fit",
                    line.len()
                ))),
                Err(e) => Err(self.classify(e)),
            };
        }
        Err(StoreError::Busy(
            "the log kept changing under this append".into(),
        ))
    }

    fn summary(&self) -> Result<Summary, StoreError> {
        let Some((mut file, layout)) = self.open_for_read()? else {
            return Ok(Summary {
                sync: self.sync,
                ..Summary::default()
            });
        };
        self.check_tail(&mut file, &layout)?;
        let (first, last) = if layout.records == 0 {
            (None, None)
        } else {
            let first = self.read_record(&mut file, &layout, 0)?;
            let last = self.read_record(&mut file, &layout, layout.records - 1)?;
            (Some(first), Some(last))
        };
        Ok(Summary {
            visits: layout.records,
            first,
            last,
            log_bytes: layout.whole_len() + layout.torn_bytes,
            torn_bytes: layout.torn_bytes,
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
        // The log as an append would find it: a regular file whose records and tail are
        // sound. A legacy log is fine: the next append rewrites it.
        match OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.log_path())
        {
            Ok(mut file) => {
                let layout = self.inspect(&mut file)?;
                self.check_tail(&mut file, &layout)?;
                if layout.records > 0 {
                    self.read_record(&mut file, &layout, layout.records - 1)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound && !self.is_escaping_link() => {}
            Err(e) => return Err(self.open_error(e)),
        }
        self.probe_write()
    }

    fn text_chunks(
        &self,
        span: Span,
    ) -> Result<Box<dyn Iterator<Item = Vec<u8>> + '_>, StoreError> {
        let Some((file, layout)) = self.open_for_read()? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let width = layout.format.record_len();
        let mut file = file;
        file.seek(SeekFrom::Start(layout.offset_of(span.skip)))
            .map_err(|e| self.classify(e))?;
        let mut remaining = span.records.min(layout.records.saturating_sub(span.skip));
        let mut raw = vec![0; (TEXT_CHUNK_RECORDS * width) as usize];
        Ok(Box::new(std::iter::from_fn(move || {
            let n = remaining.min(TEXT_CHUNK_RECORDS);
            if n == 0 {
                return None;
            }
            let raw = &mut raw[..(n * width) as usize];
            file.read_exact(raw).ok()?;
            remaining -= n;
            let mut chunk = Vec::with_capacity((n * RECORD_LEN) as usize);
            for rec in raw.chunks(width as usize) {
                match layout.format {
                    // Served as stored, once its shape is checked: never bytes that are not records.
                    Format::Current
                        if Format::Current.is_record_prefix(rec)
                            && rec.len() == RECORD_LEN as usize =>
                    {
                        chunk.extend_from_slice(rec)
                    }
                    Format::Legacy => match Format::Legacy.decode(rec) {
                        Some(ts) => chunk.extend_from_slice(record::encode(&ts).as_bytes()),
                        None => break,
                    },
                    _ => break,
                }
            }
            // A record that is not one ends the stream there (the body comes up short).
            if chunk.len() as u64 != n * RECORD_LEN {
                remaining = 0;
            }
            (!chunk.is_empty()).then_some(chunk)
        })))
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
    fn served(log: &FileLog, skip: u64, records: u64) -> Vec<u8> {
        let chunks = log.text_chunks(Span { skip, records }).unwrap();
        chunks.flatten().collect()
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
        let streamed: Vec<u8> = served(&log, 0, 2);
        assert_eq!(streamed, text.as_bytes());
        let first_only: Vec<u8> = served(&log, 0, 1);
        assert_eq!(first_only, format!("{TS}\n").as_bytes());
        let second_only: Vec<u8> = served(&log, 1, 1);
        assert_eq!(second_only, format!("{TS2}\n").as_bytes());
    }

    #[test]
    fn a_torn_tail_is_not_counted_and_is_cut_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        log.append(TS).unwrap();
        raw_append(&log, &TS2.as_bytes()[..11]);
        let s = log.summary().unwrap();
        assert_eq!((s.visits, s.torn_bytes), (1, 11));
        assert_eq!(s.last.as_deref(), Some(TS));
        log.check_ready().unwrap();

        log.append(TS2).unwrap();
        let text = fs::read_to_string(log.log_path()).unwrap();
        assert_eq!(text, format!("{TS}\n{TS2}\n"));
        assert!(!dir.path().join(LOCK).exists());
    }

    #[test]
    fn bytes_that_are_not_a_record_are_never_cut_and_stop_everything() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        log.append(TS).unwrap();
        log.append(TS2).unwrap();
        // 65 bytes inserted after the first record, by hand.
        let mut bytes = fs::read(log.log_path()).unwrap();
        bytes.splice(32..32, [b'x'; 65]);
        fs::write(log.log_path(), &bytes).unwrap();

        for err in [
            log.append(TS).unwrap_err(),
            log.check_ready().unwrap_err(),
            log.summary().unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::Damaged(_)), "{err}");
            assert!(err.to_string().contains("offset 128"), "{err}");
        }
        assert_eq!(fs::read(log.log_path()).unwrap(), bytes, "nothing was cut");
        // Readers stop at the first record that is not one.
        let streamed: Vec<u8> = served(&log, 0, 3);
        assert_eq!(streamed, format!("{TS}\n").as_bytes());
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
    fn a_log_that_does_not_start_with_a_record_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        fs::write(log.log_path(), "hello, this is not a visits log\n").unwrap();
        assert!(matches!(log.append(TS), Err(StoreError::Damaged(_))));
        assert!(matches!(log.check_ready(), Err(StoreError::Damaged(_))));
    }

    #[test]
    fn a_legacy_log_is_read_as_it_is_and_rewritten_once_at_the_first_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let legacy = "2026-11-27T08:03:19.123456+03:00\n2026-11-27T08:03:19.999999+03:00\n";
        fs::write(log.log_path(), format!("{legacy}2026-11-2")).unwrap();
        let s = log.summary().unwrap();
        assert_eq!((s.visits, s.torn_bytes), (2, 9));
        assert_eq!(s.first.as_deref(), Some("2026-11-27T08:03:19.12345+03:00"));
        assert_eq!(s.last.as_deref(), Some("2026-11-27T08:03:19.99999+03:00"));
        let served: Vec<u8> = served(&log, 1, 1);
        assert_eq!(served, b"2026-11-27T08:03:19.99999+03:00\n");
        log.check_ready().unwrap();

        log.append(TS2).unwrap();
        assert_eq!(
            fs::read_to_string(log.log_path()).unwrap(),
            format!("2026-11-27T08:03:19.12345+03:00\n2026-11-27T08:03:19.99999+03:00\n{TS2}\n")
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(LEGACY_BACKUP)).unwrap(),
            format!("{legacy}2026-11-2"),
            "the original is kept byte for byte"
        );
        assert!(!dir.path().join(LOCK).exists() && !dir.path().join(MIGRATING).exists());
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
