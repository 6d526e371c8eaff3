//! `VisitLog` on a directory: `visits.txt` in a WASI preopened dir (or any dir, natively).
//!
//! Concurrency: many instances append at once (one per request). Each visit is one `write`
//! on an `O_APPEND` handle, which the kernel keeps whole and unmixed for a regular file.
//! A torn tail only exists after a failed write, so it was never acknowledged: the next
//! append cuts it back to the last whole record, under an `O_EXCL` lock file so two
//! instances never cut at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::record::{self, Layout, RECORD_LEN};
use crate::visit_log::{StoreError, Summary, VisitLog};

pub const LOG_FILE: &str = "visits.txt";
const REPAIR_LOCK: &str = ".visits.repair.lock";
/// A lock older than this was left by an instance that died mid-repair.
const STALE_LOCK: Duration = Duration::from_secs(10);
/// How long an append waits for another instance's repair before answering 503.
const REPAIR_WAIT: Duration = Duration::from_millis(200);
/// How long a torn-looking size must stay unchanged before it is cut as a real torn tail.
const TORN_SETTLE: Duration = Duration::from_millis(2);
/// Streaming chunk: few host calls, and the instance's memory stays flat whatever the log size.
const TEXT_CHUNK: usize = 64 * 1024;

pub struct FileLog {
    dir: PathBuf,
}

impl FileLog {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileLog { dir: dir.into() }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Opens the log for reading, with the whole-record layout it had at that moment.
    /// `None` when no visit was ever recorded.
    pub fn open_for_read(&self) -> Result<Option<(File, Layout)>, StoreError> {
        match File::open(self.log_path()) {
            Ok(file) => {
                let len = file.metadata().map_err(|e| self.classify(e))?.len();
                Ok(Some((file, Layout::of_len(len))))
            }
            Err(e) if e.kind() == ErrorKind::NotFound && self.dir_exists() => Ok(None),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn dir_exists(&self) -> bool {
        fs::metadata(&self.dir).is_ok_and(|m| m.is_dir())
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

    /// Cuts a torn tail back to the last whole record. Only one instance cuts at a time; the
    /// others wait briefly and find the log already whole.
    fn repair_torn_tail(&self) -> Result<(), StoreError> {
        let lock_path = self.dir.join(REPAIR_LOCK);
        let waited_since = SystemTime::now();
        let _lock = loop {
            match LockFile::acquire(&lock_path) {
                Ok(lock) => break lock,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if LockFile::is_stale(&lock_path) {
                        let _ = fs::remove_file(&lock_path);
                    } else if waited_since.elapsed().unwrap_or_default() > REPAIR_WAIT {
                        return Err(StoreError::Busy(format!(
                            "a torn tail is being cut ({} is held)",
                            lock_path.display()
                        )));
                    } else {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Err(e) => return Err(self.classify(e)),
            }
        };
        let file = OpenOptions::new()
            .write(true)
            .open(self.log_path())
            .map_err(|e| self.classify(e))?;
        let len = || {
            file.metadata()
                .map(|m| m.len())
                .map_err(|e| self.classify(e))
        };
        let seen = len()?;
        if Layout::of_len(seen).torn_bytes == 0 {
            return Ok(());
        }
        // A record that crosses a page boundary is copied in two steps, and the file's size
        // grows after each: for a few microseconds a live append looks torn. Cutting then
        // would drop records that were just acknowledged (the crash test caught it at 16k
        // visits/s). A real torn tail stays put; a live one grows within TORN_SETTLE.
        std::thread::sleep(TORN_SETTLE);
        let settled = len()?;
        if settled != seen {
            return Ok(());
        }
        file.set_len(Layout::of_len(settled).whole_len())
            .map_err(|e| self.classify(e))?;
        Ok(())
    }

    fn read_record(file: &mut File, index: u64) -> io::Result<Option<String>> {
        let mut buf = [0u8; RECORD_LEN as usize];
        file.seek(SeekFrom::Start(Layout::offset_of(index)))?;
        file.read_exact(&mut buf)?;
        Ok(record::decode(&buf).map(str::to_owned))
    }
}

impl VisitLog for FileLog {
    fn append(&self, timestamp: &str) -> Result<(), StoreError> {
        let line = record::encode(timestamp);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| self.classify(e))?;
        let len = file.metadata().map_err(|e| self.classify(e))?.len();
        if Layout::of_len(len).torn_bytes != 0 {
            self.repair_torn_tail()?;
        }
        // One write call for the whole record: a retry loop (`write_all`) could split it
        // around another instance's record.
        let outcome = match file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => Err(StoreError::Full(format!(
                "only {n} of {} bytes fit",
                line.len()
            ))),
            Err(e) => Err(self.classify(e)),
        };
        // Whatever part of the record landed is torn: cut it now rather than at the next visit.
        let _ = self.repair_torn_tail();
        outcome
    }

    fn summary(&self) -> Result<Summary, StoreError> {
        let Some((mut file, layout)) = self.open_for_read()? else {
            return Ok(Summary::default());
        };
        let (first, last) = if layout.records == 0 {
            (None, None)
        } else {
            let first = Self::read_record(&mut file, 0).map_err(|e| self.classify(e))?;
            let last =
                Self::read_record(&mut file, layout.records - 1).map_err(|e| self.classify(e))?;
            (first, last)
        };
        Ok(Summary {
            visits: layout.records,
            first,
            last,
            log_bytes: layout.whole_len() + layout.torn_bytes,
            torn_bytes: layout.torn_bytes,
        })
    }

    fn check_ready(&self) -> Result<(), StoreError> {
        if !self.dir_exists() {
            return Err(StoreError::Missing(format!(
                "{} is not a directory this component can see",
                self.dir.display()
            )));
        }
        self.probe_write()
    }

    fn text_chunks(
        &self,
        skip: u64,
        len: u64,
    ) -> Result<Box<dyn Iterator<Item = Vec<u8>> + '_>, StoreError> {
        let Some((mut file, _)) = self.open_for_read()? else {
            return Ok(Box::new(std::iter::empty()));
        };
        file.seek(SeekFrom::Start(skip * RECORD_LEN))
            .map_err(|e| self.classify(e))?;
        let mut remaining = file.take(len);
        Ok(Box::new(std::iter::from_fn(move || {
            let mut chunk = vec![0; TEXT_CHUNK];
            match remaining.read(&mut chunk) {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some(chunk)
                }
            }
        })))
    }
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

    const TS: &str = "2026-11-27T08:03:19.123456+03:00";
    const TS2: &str = "2026-11-27T08:03:20.000001+03:00";

    #[test]
    fn appends_count_and_report_first_and_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        assert_eq!(log.summary().unwrap(), Summary::default());
        log.append(TS).unwrap();
        log.append(TS2).unwrap();
        let s = log.summary().unwrap();
        assert_eq!((s.visits, s.log_bytes, s.torn_bytes), (2, 66, 0));
        assert_eq!(s.first.as_deref(), Some(TS));
        assert_eq!(s.last.as_deref(), Some(TS2));
        let text = fs::read_to_string(log.log_path()).unwrap();
        assert_eq!(text, format!("{TS}\n{TS2}\n"));
        let streamed: Vec<u8> = log.text_chunks(0, 66).unwrap().flatten().collect();
        assert_eq!(streamed, text.as_bytes());
        let first_only: Vec<u8> = log.text_chunks(0, 33).unwrap().flatten().collect();
        assert_eq!(first_only, format!("{TS}\n").as_bytes());
        let second_only: Vec<u8> = log.text_chunks(1, 33).unwrap().flatten().collect();
        assert_eq!(second_only, format!("{TS2}\n").as_bytes());
    }

    #[test]
    fn torn_tail_is_not_counted_and_is_cut_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        log.append(TS).unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(log.log_path())
            .unwrap()
            .write_all(&TS2.as_bytes()[..11])
            .unwrap();
        let s = log.summary().unwrap();
        assert_eq!((s.visits, s.torn_bytes), (1, 11));
        assert_eq!(s.last.as_deref(), Some(TS));

        log.append(TS2).unwrap();
        let text = fs::read_to_string(log.log_path()).unwrap();
        assert_eq!(text, format!("{TS}\n{TS2}\n"));
        assert!(!dir.path().join(REPAIR_LOCK).exists());
    }

    #[test]
    fn stale_repair_lock_is_broken_and_fresh_one_makes_append_busy() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        fs::write(log.log_path(), &TS.as_bytes()[..5]).unwrap();
        let lock = dir.path().join(REPAIR_LOCK);
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
