//! The storage seam: what the HTTP layer needs from wherever visits are kept.

use std::fmt;

use http::StatusCode;

use crate::durability::SyncMode;
use crate::record::RECORD_LEN;

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
    /// The component's environment sets something it cannot use: 500 until an operator
    /// fixes it (`MisconfiguredLog`).
    Misconfigured(String),
}

impl StoreError {
    pub fn status(&self) -> StatusCode {
        match self {
            StoreError::Missing(_)
            | StoreError::ReadOnly(_)
            | StoreError::Unavailable(_)
            | StoreError::Busy(_)
            | StoreError::Damaged(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
            StoreError::Io(_) | StoreError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            StoreError::Misconfigured(d) => ("component is misconfigured", d),
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
    /// What an acknowledged visit survives (a property of the store, reported with its data).
    pub sync: SyncMode,
}

/// A run of records, counted in records: the `records` after the first `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub skip: u64,
    pub records: u64,
}

impl Span {
    /// The latest `tail` of `total` records, or all of them.
    pub fn latest(total: u64, tail: Option<u64>) -> Span {
        let skip = tail.map_or(0, |n| total.saturating_sub(n));
        Span {
            skip,
            records: total - skip,
        }
    }

    /// Bytes of the text form: every store serves fixed-width records.
    pub fn text_len(&self) -> u64 {
        self.records * RECORD_LEN
    }
}

/// One replica's visit log.
pub trait VisitLog {
    /// Appends one visit at `timestamp`; `Ok` means it is on the volume and counted, and on
    /// stable storage unless the store's `SyncMode` is `None`.
    fn append(&self, timestamp: &str) -> Result<(), StoreError>;
    /// Count, first and last visit: O(1) in the number of visits.
    fn summary(&self) -> Result<Summary, StoreError>;
    /// Ok when a visit could be recorded right now: the volume exists, is writable, has room.
    fn check_ready(&self) -> Result<(), StoreError>;
    /// The text form of `span` (one `timestamp\n` a visit, in the order recorded: concurrent
    /// visits may land a few microseconds out of time order) in chunks of checked records:
    /// at most `span.text_len()` bytes. A record that is not one, or a read error, is an
    /// `Err` item that ends the stream: a response must then be aborted, never ended short.
    fn text_chunks(&self, span: Span) -> Result<TextChunks<'_>, StoreError>;
    /// For each of `moments` (ascending, in the record format), how many visits came before
    /// it: a binary search each over the records in time order, O(log visits), never a scan.
    /// Visits recorded concurrently may be a few microseconds out of order, so a count at a
    /// moment within those microseconds may be off by them.
    fn visits_before(&self, moments: &[String]) -> Result<Vec<u64>, StoreError>;
}

/// The chunks `VisitLog::text_chunks` yields.
pub type TextChunks<'a> = Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a>;

/// The store of a component started with a setting it cannot use: every call fails with
/// `Misconfigured`, so a visit is a 500 saying why and `/readyz` fails, while `/healthz`
/// (which needs no store) keeps the process alive for an operator to see.
pub struct MisconfiguredLog(pub String);

impl VisitLog for MisconfiguredLog {
    fn append(&self, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Misconfigured(self.0.clone()))
    }
    fn summary(&self) -> Result<Summary, StoreError> {
        Err(StoreError::Misconfigured(self.0.clone()))
    }
    fn check_ready(&self) -> Result<(), StoreError> {
        Err(StoreError::Misconfigured(self.0.clone()))
    }
    fn text_chunks(&self, _: Span) -> Result<TextChunks<'_>, StoreError> {
        Err(StoreError::Misconfigured(self.0.clone()))
    }
    fn visits_before(&self, _: &[String]) -> Result<Vec<u64>, StoreError> {
        Err(StoreError::Misconfigured(self.0.clone()))
    }
}

/// The timestamps in `span`, oldest first: what `/visits?tail=` and `app-wasm show` list.
/// All of them or an error, never fewer.
pub fn timestamps(log: &dyn VisitLog, span: Span) -> Result<Vec<String>, StoreError> {
    let mut text = Vec::new();
    for chunk in log.text_chunks(span)? {
        text.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_owned)
        .collect())
}
