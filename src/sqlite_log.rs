//! `VisitLog` on Spin's stores: the Kubernetes flavour (`--features spin-sqlite`).
//!
//! containerd-shim-spin mounts manifest `files` read-only, but Spin's own stores write to the
//! absolute paths in `/runtime-config.toml`: one SQLite file on the pod's volume, named there
//! both as the key-value store `default` and as the SQLite database `default`.
//!
//! **Writes go through the key-value store, reads through SQL** (measured against four other
//! designs in bench/README.md, "Store designs": it leads at 1, 16 and 64 connections on a
//! quiet and on a busy disk). Spin opens a new SQLite connection for every guest
//! `Connection::open`, so visits written through SQL contend for SQLite's write lock by
//! polling (its busy handler sleeps 1, 2, 5 ... 100 ms; even a 1 ms busy timeout with the
//! retry in the guest only cuts the tail to ~200 ms), and every request that closes the last
//! connection checkpoints and deletes the WAL. Spin's key-value store (`type = "spin"`) keeps
//! one connection for the app's life behind a mutex: visits queue in the host, each one
//! autocommit `INSERT` (`synchronous = FULL`, SQLite's compiled default: a 200 is on stable
//! storage), and that connection, held open, keeps the WAL from being torn down.
//!
//! Count: every visit is a new key (its timestamp and 128 random bits), so every `set` is an
//! insert into `spin_key_value`, whose rowid SQLite makes "one larger than the largest ROWID in
//! the table prior to the insert"; a failed insert takes nothing, and the app never deletes.
//! So the rowids are 1..N by construction: `max(rowid)` is the exact count, read from the
//! b-tree's edge, and record k has rowid k, so paging is a bound. The readiness probe's row
//! never commits (see `BEGIN_PROBE`).

use crate::visit_log::StoreError;

/// The label of both stores in spin.toml and the runtime config.
pub const STORE: &str = "default";
/// Spin's key-value table (crates/key-value-spin, unchanged since Spin 1.x), created by Spin
/// when the component first opens the store.
pub const KV_TABLE: &str = "spin_key_value";

/// WAL: one fsync per visit instead of a rollback journal's several, and readers never block
/// the writer. Kept in the database file; asked on every connection (a no-op once set),
/// because the key-value store makes a new file with a rollback journal.
pub const WAL: &str = "PRAGMA journal_mode = WAL";
pub const SUMMARY: &str = "SELECT (SELECT max(rowid) FROM spin_key_value), \
     (SELECT CAST(value AS TEXT) FROM spin_key_value ORDER BY rowid LIMIT 1), \
     (SELECT CAST(value AS TEXT) FROM spin_key_value ORDER BY rowid DESC LIMIT 1), \
     (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())";
/// How many visits came before a moment (`?1`): a binary search over the rowids, which are
/// 1..N in the order visits were recorded, as the file log searches its records by position.
/// O(log visits) lookups by rowid in one statement. (The key's order is the timestamps', but
/// a search by key would count by rowid, which concurrent commits can put out of key order.)
pub const VISITS_BEFORE: &str = "WITH RECURSIVE search(lo, hi) AS ( \
     SELECT 0, (SELECT coalesce(max(rowid), 0) FROM spin_key_value) \
     UNION ALL SELECT \
       CASE WHEN (SELECT CAST(value AS TEXT) FROM spin_key_value WHERE rowid = (lo + hi) / 2 + 1) < ?1 \
         THEN (lo + hi) / 2 + 1 ELSE lo END, \
       CASE WHEN (SELECT CAST(value AS TEXT) FROM spin_key_value WHERE rowid = (lo + hi) / 2 + 1) < ?1 \
         THEN hi ELSE (lo + hi) / 2 END \
     FROM search WHERE lo < hi) \
     SELECT lo FROM search WHERE lo = hi";
pub const PAGE: &str = "SELECT rowid, CAST(value AS TEXT) FROM spin_key_value \
     WHERE rowid > ? ORDER BY rowid LIMIT 2048";
/// Readiness commits what a visit commits, a row of a visit's size in Spin's table, in a
/// transaction that deletes it again: it needs the same room in the WAL as the next visit, so
/// `/readyz` fails exactly when visits would (full, read-only, missing volume) and not before.
/// The row is deleted in the transaction that inserts it, so no reader ever sees it, and its
/// rowid is handed out again by the next visit: the rowids stay 1..N. Its `store` column,
/// `PROBE_STORE`, is no key-value store's label, so no guest sees the key either.
pub const BEGIN_PROBE: &str = "BEGIN IMMEDIATE";
/// As long as `STORE`, so the probe's row and index entry take a visit's room.
pub const PROBE_STORE: &str = "rdyprob";
pub const WRITE_PROBE: &str = "INSERT INTO spin_key_value (store, key, value) \
     VALUES (?, ?, zeroblob(?))";
pub const CLEAR_PROBE: &str = "DELETE FROM spin_key_value WHERE store = ?";
/// A visit key's length, so the probe's index entry is a visit's size too.
pub const PROBE_KEY: &str =
    "ready-probe/0000-00-00T00:00:00.00000+00:00/00000000000000000000000000";
pub const COMMIT_PROBE: &str = "COMMIT";
pub const ROLLBACK_PROBE: &str = "ROLLBACK";
/// SQL writes (the switch to WAL, the probe) share the write lock with the key-value store's
/// connection: SQLite waits for it at most 1 ms and the guest tries again after
/// `RETRY_WAIT_NS`, for at most `RETRY_BUDGET_NS` (then 503 "busy; retry"), so none sleeps in
/// SQLite's growing busy-handler steps. The budget stays under kubelet's default 1 s probe
/// timeout, so a probe that cannot get the lock reports 503 before kubelet gives up on it.
pub const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 1";
pub const RETRY_WAIT_NS: u64 = 1_000_000;
pub const RETRY_BUDGET_NS: u64 = 500_000_000;
/// A visit's value is its RFC 3339 timestamp (a record without its newline).
pub const PROBE_VALUE_BYTES: i64 = crate::record::RECORD_LEN as i64 - 1;

/// A key no other visit has: the timestamp (for a person reading the table) and 128 random
/// bits, so a `set` never overwrites an earlier visit (a collision needs about 2^64 visits).
pub fn visit_key(timestamp: &str, random: [u64; 2]) -> String {
    format!("visit/{timestamp}/{:016x}{:016x}", random[0], random[1])
}

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

/// Before the first visit Spin has not made its table yet: that is an empty log.
pub fn is_missing_table(message: &str) -> bool {
    message.contains("no such table")
}

#[cfg(all(target_arch = "wasm32", feature = "spin-sqlite"))]
pub use store::SqliteLog;

#[cfg(all(target_arch = "wasm32", feature = "spin-sqlite"))]
mod store {
    use spin_sdk::sqlite::{Connection, Error, QueryResult, Value};
    use spin_sdk::wit::wasi::keyvalue::store as kv;
    use wasi::clocks::monotonic_clock;

    use super::*;
    use crate::durability::SyncMode;
    use crate::visit_log::{Span, Summary, TextChunks, VisitLog};

    /// Stateless: Spin names both stores ("default") and the runtime config places them.
    #[derive(Default)]
    pub struct SqliteLog;

    impl SqliteLog {
        /// A connection to the database in WAL mode. The key-value store makes a new file with
        /// a rollback journal, and the switch waits for the write lock: a refusal is busy.
        fn connect(&self) -> Result<Connection, StoreError> {
            let db = Connection::open(STORE).map_err(to_store_error)?;
            db.execute(BUSY_TIMEOUT, &[]).map_err(to_store_error)?;
            let mode = retry_while_busy(|| db.execute(WAL, &[]).map_err(to_store_error))?;
            match mode.rows.first().and_then(|row| row.get::<&str>(0)) {
                Some("wal") => Ok(db),
                other => Err(StoreError::Io(format!("journal mode {other:?}, not wal"))),
            }
        }

        /// Runs a read; `None` where no visit has made the table yet.
        fn read(
            &self,
            db: &Connection,
            sql: &str,
            params: &[Value],
        ) -> Result<Option<QueryResult>, StoreError> {
            match db.execute(sql, params) {
                Err(Error::Io(m)) if is_missing_table(&m) => Ok(None),
                other => other.map(Some).map_err(to_store_error),
            }
        }
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

    fn kv_error(err: kv::Error) -> StoreError {
        match err {
            kv::Error::Other(m) => classify(&m),
            kv::Error::NoSuchStore | kv::Error::AccessDenied => StoreError::Io(format!(
                "{err:?}: the component needs key_value_stores = [\"{STORE}\"] in spin.toml"
            )),
        }
    }

    impl VisitLog for SqliteLog {
        fn append(&self, timestamp: &str) -> Result<(), StoreError> {
            use wasi::random::random::get_random_u64;
            let key = visit_key(timestamp, [get_random_u64(), get_random_u64()]);
            // No SQL connection here: one per visit halves the pod's req/s (bench/README.md,
            // "Store designs"). The first read or probe switches a new file to WAL.
            let bucket = kv::open(STORE).map_err(kv_error)?;
            bucket.set(&key, timestamp.as_bytes()).map_err(kv_error)
        }

        fn summary(&self) -> Result<Summary, StoreError> {
            let db = self.connect()?;
            let Some(result) = self.read(&db, SUMMARY, &[])? else {
                return Ok(Summary::default());
            };
            let Some(row) = result.rows.first() else {
                return Ok(Summary::default());
            };
            Ok(Summary {
                visits: row.get::<i64>(0).unwrap_or(0) as u64,
                first: row.get::<&str>(1).map(str::to_owned),
                last: row.get::<&str>(2).map(str::to_owned),
                log_bytes: row.get::<i64>(3).unwrap_or(0) as u64,
                torn_bytes: 0,
                // `synchronous = FULL`, SQLite's compiled default: every commit is synced.
                sync: SyncMode::Data,
            })
        }

        fn check_ready(&self) -> Result<(), StoreError> {
            // WAL first, so that the key-value store's connection (made on the store's first
            // use, with its table) starts on a WAL database.
            let db = self.connect()?;
            let bucket = kv::open(STORE).map_err(kv_error)?;
            bucket.exists(PROBE_KEY).map_err(kv_error)?;
            let store = Value::Text(PROBE_STORE.into());
            let row = [
                store.clone(),
                Value::Text(PROBE_KEY.into()),
                Value::Integer(PROBE_VALUE_BYTES),
            ];
            retry_while_busy(|| {
                db.execute(BEGIN_PROBE, &[]).map_err(to_store_error)?;
                let committed = db
                    .execute(WRITE_PROBE, &row)
                    .and_then(|_| db.execute(CLEAR_PROBE, std::slice::from_ref(&store)))
                    .and_then(|_| db.execute(COMMIT_PROBE, &[]));
                if committed.is_err() {
                    // A failed statement may leave the transaction open or may have rolled it
                    // back (SQLite's docs, FULL/IOERR). One still open that cannot be rolled
                    // back would make every further try fail to BEGIN: stop there.
                    match db.execute(ROLLBACK_PROBE, &[]) {
                        Err(Error::Io(m)) if m.contains("no transaction is active") => {}
                        Err(e) => {
                            return Err(StoreError::Io(format!("rolling the probe back: {e}")))
                        }
                        Ok(_) => {}
                    }
                }
                committed.map(drop).map_err(to_store_error)
            })
        }

        fn visits_before(&self, moments: &[String]) -> Result<Vec<u64>, StoreError> {
            let db = self.connect()?;
            let mut counts = Vec::with_capacity(moments.len());
            for moment in moments {
                let found = self.read(&db, VISITS_BEFORE, &[Value::Text(moment.clone())])?;
                let row = found.as_ref().and_then(|result| result.rows.first());
                counts.push(row.and_then(|r| r.get::<i64>(0)).unwrap_or(0).max(0) as u64);
            }
            Ok(counts)
        }

        fn text_chunks(&self, span: Span) -> Result<TextChunks<'_>, StoreError> {
            let db = self.connect()?;
            // Rowids run 1..=count with no gaps (the count is max(rowid)): skipping is a bound.
            let mut after = span.skip as i64;
            let mut remaining = span.text_len() as usize;
            Ok(Box::new(std::iter::from_fn(move || {
                if remaining == 0 {
                    return None;
                }
                let page = match self.read(&db, PAGE, &[Value::Integer(after)]) {
                    Ok(Some(page)) if !page.rows.is_empty() => page,
                    Ok(_) => {
                        remaining = 0;
                        return Some(Err(StoreError::Damaged(format!(
                            "the store holds no visit after rowid {after}, fewer than it counts"
                        ))));
                    }
                    Err(e) => {
                        remaining = 0;
                        return Some(Err(e));
                    }
                };
                let mut chunk = Vec::with_capacity(64 * 1024);
                for row in &page.rows {
                    let (Some(rowid), Some(text)) = (row.get::<i64>(0), row.get::<&str>(1)) else {
                        remaining = 0;
                        return Some(Err(StoreError::Damaged(format!(
                            "a row after rowid {after} is not a visit"
                        ))));
                    };
                    after = rowid;
                    chunk.extend_from_slice(text.as_bytes());
                    chunk.push(b'\n');
                }
                chunk.truncate(remaining);
                remaining -= chunk.len();
                Some(Ok(chunk))
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
        assert!(is_missing_table("no such table: spin_key_value"));
        assert!(!is_missing_table("database or disk is full"));
    }

    #[test]
    fn every_query_reads_spins_key_value_table() {
        for sql in [SUMMARY, PAGE, VISITS_BEFORE, WRITE_PROBE, CLEAR_PROBE] {
            assert!(sql.contains(KV_TABLE), "{sql}");
        }
    }

    /// The search run by SQLite itself (the bundled rusqlite of the tests) on Spin's table: it
    /// counts by position in the order recorded, as the file log does, whatever the keys say.
    #[test]
    fn visits_before_is_a_binary_search_over_the_order_recorded() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, \
             value BLOB NOT NULL, PRIMARY KEY (store, key))",
        )
        .unwrap();
        let before = |moment: &str| -> i64 {
            db.query_row(VISITS_BEFORE, [moment], |row| row.get(0))
                .unwrap()
        };
        assert_eq!(
            before("2026-11-27T08:00:00.00000+03:00"),
            0,
            "an empty table"
        );
        let at = |h: u32, m: u32| format!("2026-11-27T{h:02}:{m:02}:00.00000+03:00");
        // Recorded in this order; the last two raced and committed out of key order.
        let visits = [
            (6, 1),
            (6, 30),
            (8, 0),
            (8, 10),
            (8, 20),
            (8, 59),
            (9, 5),
            (9, 4),
        ];
        for (i, (h, m)) in visits.iter().enumerate() {
            let ts = at(*h, *m);
            db.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)",
                rusqlite::params![STORE, visit_key(&ts, [i as u64, 0]), ts.as_bytes()],
            )
            .unwrap();
        }
        let counts: Vec<i64> = (5..=10).map(|h| before(&at(h, 0))).collect();
        assert_eq!(counts, [0, 0, 2, 2, 6, 8]);
        assert_eq!(before(&at(8, 10)), 3, "visits strictly before the moment");
        // Nothing outside the table's rows: a search from any moment ends within 0..=N.
        assert_eq!(before("9999"), 8);
        assert_eq!(before(""), 0);
    }

    #[test]
    fn the_probe_row_is_a_visits_size() {
        let at = "2026-11-27T08:03:19.12345+03:00";
        let visit = visit_key(at, [u64::MAX; 2]);
        assert_eq!(PROBE_KEY.len(), visit.len());
        assert!(!PROBE_KEY.starts_with("visit/"));
        assert_eq!(PROBE_STORE.len(), STORE.len());
        assert_ne!(PROBE_STORE, STORE);
        assert_eq!(PROBE_VALUE_BYTES as usize, at.len());
    }

    #[test]
    fn visit_keys_differ_by_their_random_part_and_start_with_the_time() {
        let t = "2026-11-27T08:03:19.12345+03:00";
        let a = visit_key(t, [1, 2]);
        assert_eq!(a, format!("visit/{t}/00000000000000010000000000000002"));
        assert_ne!(a, visit_key(t, [1, 3]));
        assert_ne!(a, visit_key(t, [2, 2]));
    }
}
