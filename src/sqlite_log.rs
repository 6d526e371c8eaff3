//! `VisitLog` on Spin's SQLite store: the Kubernetes flavour (`--features spin-sqlite`).
//!
//! containerd-shim-spin mounts manifest `files` read-only and never passes
//! `--allow-transient-write`, but Spin's host-side SQLite writes to the absolute `path` in
//! `/runtime-config.toml`: a path on the pod's volume. Every write here is a single
//! autocommit statement, so nothing depends on how Spin shares connections between instances.
//!
//! Count: `visit_log.id` is a plain `INTEGER PRIMARY KEY` (no `AUTOINCREMENT`), so SQLite gives
//! each insert "one larger than the largest ROWID in the table prior to the insert" and a
//! failed insert takes nothing. The app never deletes, so the ids are 1..N by construction:
//! `max(id)` is the exact count, read from the b-tree's edge, and record k has id k, so paging
//! is a bound. No counter row to write per visit (a trigger-kept counter measured 8x slower
//! under 1,000 concurrent first visits, see `git show a61253a`).
//!
//! Earlier versions kept `visits` with `AUTOINCREMENT`, which SQLite documents as increasing,
//! not gapless. Such a table is moved into `visit_log` once, renumbered in order, in one
//! transaction with its drop (`MIGRATE`): the first statement that finds no `visit_log` does it.

use crate::visit_log::StoreError;

pub const DATABASE: &str = "default";

pub const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";
/// WAL: one fsync per visit instead of a rollback journal's several, and readers never block
/// the writer. Stored in the database file, so set once, when the table is created.
/// `synchronous = FULL` keeps every acknowledged visit across power loss, not just crashes.
pub const WAL: &str = "PRAGMA journal_mode = WAL";
pub const SYNC_FULL: &str = "PRAGMA synchronous = FULL";
pub const CREATE_LOG: &str =
    "CREATE TABLE IF NOT EXISTS visit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL)";
/// Whether an earlier version's table is still there (asked under the write lock).
pub const HAS_LEGACY: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'visits'";
/// How often a move that SQLite refused at once ("database is locked") is tried again.
pub const MIGRATE_RETRIES: u32 = 50;
/// Oldest first, so the new ids follow the old order; one transaction with the drop.
pub const MIGRATE: [&str; 2] = [
    "INSERT INTO visit_log (at) SELECT at FROM visits ORDER BY id",
    "DROP TABLE visits",
];
pub const INSERT_VISIT: &str = "INSERT INTO visit_log (at) VALUES (?)";
pub const SUMMARY: &str = "SELECT (SELECT max(id) FROM visit_log), \
     (SELECT at FROM visit_log ORDER BY id LIMIT 1), \
     (SELECT at FROM visit_log ORDER BY id DESC LIMIT 1), \
     (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())";
pub const PAGE: &str = "SELECT id, at FROM visit_log WHERE id > ? ORDER BY id LIMIT 2048";
/// Readiness is a real one-row write (fails on a read-only or missing volume). It cannot see
/// a full volume: rewriting the row in place needs no new page (seen under Spin 3.6.3: the
/// probe passes while inserts fail), so a full volume shows as 507 on the next visit instead.
pub const CREATE_PROBE: &str =
    "CREATE TABLE IF NOT EXISTS ready_probe (id INTEGER PRIMARY KEY CHECK (id = 0), at TEXT)";
pub const WRITE_PROBE: &str = "INSERT INTO ready_probe (id, at) VALUES (0, datetime('now')) \
     ON CONFLICT (id) DO UPDATE SET at = excluded.at";

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

    use super::*;
    use crate::visit_log::{Span, Summary, VisitLog};

    /// Stateless: Spin names the database ("default") and the runtime config places it.
    #[derive(Default)]
    pub struct SqliteLog;

    impl SqliteLog {
        fn connect(&self) -> Result<Connection, StoreError> {
            let db = Connection::open(DATABASE).map_err(to_store_error)?;
            // Each instance gets its own connection, so concurrent visits contend for SQLite's
            // write lock: let SQLite wait for it (in the host) instead of failing at once.
            db.execute(BUSY_TIMEOUT, &[]).map_err(to_store_error)?;
            db.execute(SYNC_FULL, &[]).map_err(to_store_error)?;
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
                    db.execute(WAL, &[]).map_err(to_store_error)?;
                    self.make_schema(db)?;
                    db.execute(sql, params).map_err(to_store_error)
                }
                other => other.map_err(to_store_error),
            }
        }

        /// Creates `visit_log`. A new store needs only the autocommit `CREATE`. An earlier
        /// version's `visits` is moved in the same `BEGIN IMMEDIATE` transaction that creates
        /// `visit_log`, so no visit can land in it before the old ones; concurrent first
        /// visits run that one at a time, and the later ones find nothing left to move.
        fn make_schema(&self, db: &Connection) -> Result<(), StoreError> {
            if !has_legacy(db).map_err(to_store_error)? {
                return db
                    .execute(CREATE_LOG, &[])
                    .map(|_| ())
                    .map_err(to_store_error);
            }
            let mut attempts = 0;
            loop {
                match self.migrate(db) {
                    // Refused without waiting where waiting could deadlock: nothing happened.
                    Err(StoreError::Busy(_)) if attempts < MIGRATE_RETRIES => attempts += 1,
                    other => return other,
                }
            }
        }

        fn migrate(&self, db: &Connection) -> Result<(), StoreError> {
            db.execute("BEGIN IMMEDIATE", &[]).map_err(to_store_error)?;
            let moved = (|| {
                db.execute(CREATE_LOG, &[])?;
                if has_legacy(db)? {
                    for step in MIGRATE {
                        db.execute(step, &[])?;
                    }
                }
                db.execute("COMMIT", &[]).map(|_| ())
            })();
            if moved.is_err() {
                let _ = db.execute("ROLLBACK", &[]);
            }
            moved.map_err(to_store_error)
        }
    }

    fn has_legacy(db: &Connection) -> Result<bool, Error> {
        let found = db.execute(HAS_LEGACY, &[])?;
        Ok(found.rows.first().and_then(|r| r.get::<i64>(0)) == Some(1))
    }

    fn to_store_error(err: Error) -> StoreError {
        match err {
            Error::DatabaseFull => StoreError::Full("database or disk is full".into()),
            Error::Io(m) => classify(&m),
            Error::NoSuchDatabase | Error::AccessDenied => StoreError::Io(format!(
                "{err}: the component needs sqlite_databases = [\"{DATABASE}\"] in spin.toml"
            )),
            other => StoreError::Io(other.to_string()),
        }
    }

    impl VisitLog for SqliteLog {
        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            let db = self.connect()?;
            self.execute(&db, INSERT_VISIT, &[Value::Text(timestamp.to_owned())])?;
            Ok(())
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
            db.execute(CREATE_PROBE, &[]).map_err(to_store_error)?;
            db.execute(WRITE_PROBE, &[]).map_err(to_store_error)?;
            Ok(())
        }

        fn text_chunks(
            &self,
            span: Span,
        ) -> Result<Box<dyn Iterator<Item = Vec<u8>> + '_>, StoreError> {
            let db = self.connect()?;
            // Ids run 1..=count with no gaps (the count is max(id)), so skipping is a bound.
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
        assert!(is_missing_table("no such table: visits"));
        assert!(!is_missing_table("database or disk is full"));
    }
}
