//! The storage seam: what the HTTP layer needs from wherever visits are kept.

use std::fmt;

/// Why the volume could not serve a request. Each kind maps to one HTTP status so clients
/// and probes can tell "retry later" from "an operator must act".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The data directory is not there (not mounted / not preopened): 503.
    Missing(String),
    /// The volume refuses writes (read-only mount, permissions): 503.
    ReadOnly(String),
    /// The store cannot be opened and the component cannot see why: the volume is missing, or
    /// read-only (SQLite in WAL mode must create files beside the database): 503.
    Unavailable(String),
    /// No space left for another record: 507.
    Full(String),
    /// Another instance holds the store's lock (a torn-tail repair, SQLite's write lock): 503, retry.
    Busy(String),
    /// The log holds bytes that are not records (an outside edit) or is not a regular file:
    /// 503 until an operator moves or repairs it; nothing is cut or overwritten.
    Damaged(String),
    /// Anything else the OS reported: 500.
    Io(String),
}

impl StoreError {
    pub fn status(&self) -> u16 {
        match self {
            StoreError::Missing(_)
            | StoreError::ReadOnly(_)
            | StoreError::Unavailable(_)
            | StoreError::Busy(_)
            | StoreError::Damaged(_) => 503,
            StoreError::Full(_) => 507,
            StoreError::Io(_) => 500,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, detail) = match self {
            StoreError::Missing(d) => ("data directory is missing", d),
            StoreError::ReadOnly(d) => ("data volume is read-only", d),
            StoreError::Unavailable(d) => ("data volume cannot be opened: missing or read-only", d),
            StoreError::Full(d) => ("data volume is full; visit not recorded", d),
            StoreError::Busy(d) => ("visit store is busy; retry", d),
            StoreError::Damaged(d) => ("visit log is damaged", d),
            StoreError::Io(d) => ("data volume I/O error", d),
        };
        write!(f, "{what}: {detail}")
    }
}

impl std::error::Error for StoreError {}

/// A replica's visits at a glance, read without scanning the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub visits: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub log_bytes: u64,
    pub torn_bytes: u64,
}

/// One replica's visit log.
pub trait VisitLog {
    /// Durably appends one visit at `timestamp`; `Ok` means it is on the volume and counted.
    fn append(&self, timestamp: &str) -> Result<(), StoreError>;
    /// Count, first and last visit: O(1) in the number of visits.
    fn summary(&self) -> Result<Summary, StoreError>;
    /// Ok when a visit could be recorded right now: the volume exists, is writable, has room.
    fn check_ready(&self) -> Result<(), StoreError>;
    /// The text form (one `timestamp\n` a visit, in the order recorded: concurrent visits may
    /// land a few microseconds out of time order) in chunks, starting after the first `skip`
    /// records, at most `len` bytes: the `Content-Length` already promised. A read error ends
    /// the stream early.
    fn text_chunks(
        &self,
        skip: u64,
        len: u64,
    ) -> Result<Box<dyn Iterator<Item = Vec<u8>> + '_>, StoreError>;
}

/// The timestamps in `len` bytes of the text form after the first `skip` records, oldest
/// first: what `/visits?tail=` and `app-wasm show` list.
pub fn timestamps(log: &dyn VisitLog, skip: u64, len: u64) -> Result<Vec<String>, StoreError> {
    let text: Vec<u8> = log.text_chunks(skip, len)?.flatten().collect();
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_owned)
        .collect())
}
