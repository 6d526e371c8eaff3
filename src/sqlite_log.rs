//! `VisitLog` on Spin's SQLite store: the Kubernetes flavour (`--features spin-sqlite`).
//!
//! containerd-shim-spin mounts manifest `files` read-only and never passes
//! `--allow-transient-write`, but Spin's host-side SQLite writes to the absolute `path` in
//! `/runtime-config.toml`: a path on the pod's volume. Every write here is a single
//! autocommit statement, so nothing depends on how Spin shares connections between instances.
//!
//! Count: a one-row `visit_count` table that a trigger bumps inside every insert's own
//! transaction, so the count is exact and O(1) whatever the ids are (SQLite documents
//! `AUTOINCREMENT` ids as increasing, not gapless). The schema is made in one `BEGIN
//! IMMEDIATE` transaction; a database from before the counter gets it seeded with `count(*)`
//! once, under the write lock, so an insert lands either before the seed or after the trigger.
//! Paging (`?tail=`, the text form) starts from the id of the record before the first one
//! asked for, found from whichever end of the id index is nearer, then walks ids in order.

use crate::visit_log::StoreError;

pub const DATABASE: &str = "default";

pub const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";
/// How often an insert that SQLite refused without waiting is tried again.
pub const BUSY_RETRIES: u32 = 20;
/// WAL: one fsync per visit instead of a rollback journal's several, and readers never block
/// the writer. Stored in the database file, so set once, when the table is created.
/// `synchronous = FULL` keeps every acknowledged visit across power loss, not just crashes.
pub const WAL: &str = "PRAGMA journal_mode = WAL";
pub const SYNC_FULL: &str = "PRAGMA synchronous = FULL";
pub const CREATE_VISITS: &str =
    "CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL)";
pub const CREATE_COUNT: &str = "CREATE TABLE IF NOT EXISTS visit_count \
     (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL)";
pub const SEED_COUNT: &str =
    "INSERT OR IGNORE INTO visit_count (id, n) SELECT 0, count(*) FROM visits";
pub const COUNT_TRIGGER: &str = "CREATE TRIGGER IF NOT EXISTS count_visit AFTER INSERT ON visits \
     BEGIN UPDATE visit_count SET n = n + 1 WHERE id = 0; END";
/// The schema, in one transaction (after `WAL`, which cannot change inside one).
pub const SCHEMA: [&str; 6] = [
    "BEGIN IMMEDIATE",
    CREATE_VISITS,
    CREATE_COUNT,
    SEED_COUNT,
    COUNT_TRIGGER,
    "COMMIT",
];
pub const INSERT_VISIT: &str = "INSERT INTO visits (at) VALUES (?)";
pub const SUMMARY: &str = "SELECT (SELECT n FROM visit_count WHERE id = 0), \
     (SELECT at FROM visits ORDER BY id LIMIT 1), \
     (SELECT at FROM visits ORDER BY id DESC LIMIT 1), \
     (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())";
pub const PAGE: &str = "SELECT id, at FROM visits WHERE id > ? ORDER BY id LIMIT 2048";
/// The id of the record at 0-based index `?` from the start, or from the end.
pub const ID_FROM_START: &str = "SELECT id FROM visits ORDER BY id LIMIT 1 OFFSET ?";
pub const ID_FROM_END: &str = "SELECT id FROM visits ORDER BY id DESC LIMIT 1 OFFSET ?";

/// How to find the id after which the records from index `skip` on begin (of `count`): the
/// statement and its offset, from the nearer end. `None`: from the first record.
pub fn start_after(skip: u64, count: u64) -> Option<(&'static str, u64)> {
    match skip {
        0 => None,
        _ if skip <= count / 2 => Some((ID_FROM_START, skip - 1)),
        _ => Some((ID_FROM_END, count.saturating_sub(skip))),
    }
}
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
    use crate::visit_log::{Summary, VisitLog};

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

        /// Runs `sql`; where a table is not there yet, makes the schema and runs `sql` once more.
        fn execute(
            &self,
            db: &Connection,
            sql: &str,
            params: &[Value],
        ) -> Result<QueryResult, StoreError> {
            match db.execute(sql, params) {
                Err(Error::Io(m)) if is_missing_table(&m) => {
                    db.execute(WAL, &[]).map_err(to_store_error)?;
                    for step in SCHEMA {
                        if let Err(e) = db.execute(step, &[]) {
                            let _ = db.execute("ROLLBACK", &[]);
                            return Err(to_store_error(e));
                        }
                    }
                    db.execute(sql, params).map_err(to_store_error)
                }
                other => other.map_err(to_store_error),
            }
        }

        fn count(&self, db: &Connection) -> Result<u64, StoreError> {
            let result = self.execute(db, SUMMARY, &[])?;
            Ok(result
                .rows
                .first()
                .and_then(|r| r.get::<i64>(0))
                .unwrap_or(0) as u64)
        }
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
            // SQLite answers "database is locked" at once, without waiting, where waiting
            // could deadlock (a new database, still in rollback mode while the first instance
            // makes the schema). The insert did not happen then, so trying again is safe.
            // A database from before the counter gets it at the first summary; inserts until
            // then are counted by its seed.
            let mut attempts = 0;
            loop {
                match self.execute(&db, INSERT_VISIT, &[Value::Text(timestamp.to_owned())]) {
                    Err(StoreError::Busy(_)) if attempts < BUSY_RETRIES => attempts += 1,
                    other => return other.map(|_| ()),
                }
            }
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
            skip: u64,
            len: u64,
        ) -> Result<Box<dyn Iterator<Item = Vec<u8>> + '_>, StoreError> {
            let db = self.connect()?;
            let mut after = match start_after(skip, self.count(&db)?) {
                None => 0,
                Some((sql, offset)) => self
                    .execute(&db, sql, &[Value::Integer(offset as i64)])?
                    .rows
                    .first()
                    .and_then(|r| r.get::<i64>(0))
                    .unwrap_or(i64::MAX),
            };
            let mut remaining = len as usize;
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
    fn paging_starts_from_the_nearer_end_of_the_id_index() {
        assert_eq!(start_after(0, 10), None);
        assert_eq!(start_after(1, 10), Some((ID_FROM_START, 0)));
        assert_eq!(start_after(5, 10), Some((ID_FROM_START, 4)));
        // The last 2 of 10: after the record at index 7, which is 2 from the end.
        assert_eq!(start_after(8, 10), Some((ID_FROM_END, 2)));
        assert_eq!(start_after(10, 10), Some((ID_FROM_END, 0)));
    }

    #[test]
    fn missing_table_is_recognised_from_sqlites_message() {
        assert!(is_missing_table("no such table: visits"));
        assert!(!is_missing_table("database or disk is full"));
    }
}
