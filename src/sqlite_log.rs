//! `VisitLog` on Spin's SQLite store: the Kubernetes flavour (`--features spin-sqlite`).
//!
//! containerd-shim-spin mounts manifest `files` read-only, but Spin's host-side SQLite writes
//! to the absolute `path` in `/runtime-config.toml`: a file on the pod's volume.
//!
//! **Why each visit does what it does** (measured side by side in bench/README.md, "Store
//! designs"). Spin opens a new SQLite connection for every guest `Connection::open`, so
//! concurrent visits contend for SQLite's write lock. Left to SQLite's busy handler, a waiter
//! sleeps 1, 2, 5 ... 100 ms between tries while newcomers take the free lock: a p99 of a
//! second at 16 connections. So SQLite waits at most `BUSY_TIMEOUT` and the guest tries again
//! after `RETRY_WAIT_NS`: no waiter sleeps long, and the p99 at 16 connections drops about
//! 5x. Every visit is one autocommit `INSERT` with `synchronous = FULL` (SQLite's compiled
//! default): a 200 is on stable storage.
//!
//! Count: `visit_log.id` is a plain `INTEGER PRIMARY KEY` (no `AUTOINCREMENT`), so SQLite gives
//! each insert "one larger than the largest ROWID in the table prior to the insert" and a
//! failed insert takes nothing. The app never deletes, so the ids are 1..N by construction:
//! `max(id)` is the exact count, read from the b-tree's edge, and record k has id k, so paging
//! is a bound. The readiness probe's row never commits (see `BEGIN_PROBE`).

use crate::visit_log::StoreError;

/// The database's label in spin.toml and the runtime config.
pub const STORE: &str = "default";

/// How long SQLite itself waits for the write lock before the guest's next try: its busy
/// handler sleeps once, 1 ms.
pub const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 1";
/// The guest's pause between tries, and how long it keeps trying before a 503 "busy; retry".
pub const RETRY_WAIT_NS: u64 = 1_000_000;
pub const RETRY_BUDGET_NS: u64 = 5_000_000_000;
/// WAL: one fsync per visit instead of a rollback journal's several, and readers never block
/// the writer. Kept in the database file, so set with the table; in a pod the readiness probe
/// does that before any visit.
pub const WAL: &str = "PRAGMA journal_mode = WAL";
pub const CREATE_LOG: &str =
    "CREATE TABLE IF NOT EXISTS visit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL)";
pub const INSERT_VISIT: &str = "INSERT INTO visit_log (at) VALUES (?)";
pub const SUMMARY: &str = "SELECT (SELECT max(id) FROM visit_log), \
     (SELECT at FROM visit_log ORDER BY id LIMIT 1), \
     (SELECT at FROM visit_log ORDER BY id DESC LIMIT 1), \
     (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())";
pub const PAGE: &str = "SELECT id, at FROM visit_log WHERE id > ? ORDER BY id LIMIT 2048";
/// Readiness commits what a visit commits, a visit-sized row, in a transaction that deletes it
/// again: it needs the same room in the WAL as the next visit, so `/readyz` fails exactly when
/// visits would (full, read-only, missing volume) and not before. The row never becomes
/// visible (`IMMEDIATE` takes the write lock first, the delete commits with the insert), and
/// its id is handed out again by the next visit: the ids stay 1..N.
pub const BEGIN_PROBE: &str = "BEGIN IMMEDIATE";
pub const CLEAR_PROBE: &str = "DELETE FROM visit_log WHERE id = last_insert_rowid()";
pub const COMMIT_PROBE: &str = "COMMIT";
pub const ROLLBACK_PROBE: &str = "ROLLBACK";
/// A visit's size (an RFC 3339 timestamp with five decimals and the offset).
pub const PROBE_AT: &str = "0000-00-00T00:00:00.00000+00:00";

/// What SQLite's message (as Spin passes it on) means for the volume.
pub fn classify(message: &str) -> StoreError {
    let m = message.to_ascii_lowercase();
    let detail = message.to_owned();
    if m.contains("disk is full") || m.contains("database full") {
        StoreError::Full(detail)
    } else if m.contains("readonly") || m.contains("read-only") {
        StoreError::ReadOnly(detail)
    } else if m.contains("unable to open database file") {
        StoreError::Unavailable(format!(
            "{detail} (is the volume mounted, writable, at the runtime config's path?)"
        ))
    } else if m.contains("database is locked") || m.contains("busy") {
        StoreError::Busy(detail)
    } else {
        StoreError::Io(detail)
    }
}

pub fn is_missing_table(message: &str) -> bool {
    message.contains("no such table")
}

#[cfg(all(target_arch = "wasm32", feature = "spin-sqlite"))]
pub use store::SqliteLog;

#[cfg(all(target_arch = "wasm32", feature = "spin-sqlite"))]
mod store {
    use spin_sdk::sqlite::{Connection, Error, QueryResult, Value};
    use wasi::clocks::monotonic_clock;

    use super::*;
    use crate::visit_log::{Span, Summary, VisitLog};

    /// Stateless: Spin names the database ("default") and the runtime config places it.
    #[derive(Default)]
    pub struct SqliteLog;

    impl SqliteLog {
        fn connect(&self) -> Result<Connection, StoreError> {
            let db = Connection::open(STORE).map_err(to_store_error)?;
            db.execute(BUSY_TIMEOUT, &[]).map_err(to_store_error)?;
            Ok(db)
        }

        /// Runs `sql`; where the table is not there yet, makes it and runs `sql` once more.
        fn execute(
            &self,
            db: &Connection,
            sql: &str,
            params: &[Value],
        ) -> Result<QueryResult, StoreError> {
            match db.execute(sql, params) {
                Err(Error::Io(m)) if is_missing_table(&m) => {
                    make_schema(db)?;
                    db.execute(sql, params).map_err(to_store_error)
                }
                other => other.map_err(to_store_error),
            }
        }
    }

    fn make_schema(db: &Connection) -> Result<(), StoreError> {
        db.execute(WAL, &[]).map_err(to_store_error)?;
        db.execute(CREATE_LOG, &[]).map_err(to_store_error)?;
        Ok(())
    }

    /// Runs `attempt` until it is not refused for the write lock, pausing `RETRY_WAIT_NS`
    /// between tries, for at most `RETRY_BUDGET_NS`; then the last `Busy` (a 503 with
    /// `Retry-After`). A refused statement did nothing, so trying again is safe.
    fn retry_while_busy<T>(
        mut attempt: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let give_up = monotonic_clock::now() + RETRY_BUDGET_NS;
        loop {
            match attempt() {
                Err(StoreError::Busy(_)) if monotonic_clock::now() < give_up => {
                    monotonic_clock::subscribe_duration(RETRY_WAIT_NS).block();
                }
                other => return other,
            }
        }
    }

    fn to_store_error(err: Error) -> StoreError {
        match err {
            Error::DatabaseFull => StoreError::Full("database or disk is full".into()),
            Error::Io(m) => classify(&m),
            Error::NoSuchDatabase | Error::AccessDenied => StoreError::Io(format!(
                "{err}: the component needs sqlite_databases = [\"{STORE}\"] in spin.toml"
            )),
            other => StoreError::Io(other.to_string()),
        }
    }

    impl VisitLog for SqliteLog {
        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            let db = self.connect()?;
            let at = [Value::Text(timestamp.to_owned())];
            retry_while_busy(|| self.execute(&db, INSERT_VISIT, &at)).map(drop)
        }

        fn summary(&self) -> Result<Summary, StoreError> {
            let db = self.connect()?;
            let result = self.execute(&db, SUMMARY, &[])?;
            let Some(row) = result.rows.first() else {
                return Ok(Summary::default());
            };
            Ok(Summary {
                visits: row.get::<i64>(0).unwrap_or(0) as u64,
                first: row.get::<&str>(1).map(str::to_owned),
                last: row.get::<&str>(2).map(str::to_owned),
                log_bytes: row.get::<i64>(3).unwrap_or(0) as u64,
                torn_bytes: 0,
            })
        }

        fn check_ready(&self) -> Result<(), StoreError> {
            let db = self.connect()?;
            make_schema(&db)?;
            let at = [Value::Text(PROBE_AT.into())];
            retry_while_busy(|| {
                db.execute(BEGIN_PROBE, &[]).map_err(to_store_error)?;
                let committed = db
                    .execute(INSERT_VISIT, &at)
                    .and_then(|_| db.execute(CLEAR_PROBE, &[]))
                    .and_then(|_| db.execute(COMMIT_PROBE, &[]));
                if committed.is_err() {
                    // A failed COMMIT may leave the transaction open (SQLite's docs, FULL/IOERR).
                    let _ = db.execute(ROLLBACK_PROBE, &[]);
                }
                committed.map(drop).map_err(to_store_error)
            })
        }
        fn text_chunks(
            &self,
            span: Span,
        ) -> Result<Box<dyn Iterator<Item = Vec<u8>> + '_>, StoreError> {
            let db = self.connect()?;
            // Ids run 1..=count with no gaps (the count is max(id)): skipping is a bound.
            let mut after = span.skip as i64;
            let mut remaining = span.text_len() as usize;
            Ok(Box::new(std::iter::from_fn(move || {
                if remaining == 0 {
                    return None;
                }
                let page = self.execute(&db, PAGE, &[Value::Integer(after)]).ok()?;
                let mut chunk = Vec::with_capacity(64 * 1024);
                for row in &page.rows {
                    after = row.get::<i64>(0)?;
                    chunk.extend_from_slice(row.get::<&str>(1)?.as_bytes());
                    chunk.push(b'\n');
                }
                chunk.truncate(remaining);
                remaining -= chunk.len();
                (!chunk.is_empty()).then_some(chunk)
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_messages_map_to_volume_states() {
        assert!(matches!(
            classify("database or disk is full"),
            StoreError::Full(_)
        ));
        assert!(matches!(
            classify("attempt to write a readonly database"),
            StoreError::ReadOnly(_)
        ));
        assert!(matches!(
            classify("unable to open database file"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify("database is locked"),
            StoreError::Busy(_)
        ));
        assert!(matches!(classify("disk I/O error"), StoreError::Io(_)));
    }

    #[test]
    fn missing_table_is_recognised_from_sqlites_message() {
        assert!(is_missing_table("no such table: visit_log"));
        assert!(!is_missing_table("database or disk is full"));
    }

    #[test]
    fn the_probe_row_is_a_visits_size() {
        assert_eq!(PROBE_AT.len(), "2026-11-27T08:03:19.12345+03:00".len());
    }
}
