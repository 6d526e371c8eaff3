//! app-wasm: the visits app as a WASI HTTP component.
//!
//! `GET /` shows the time in Moscow and appends the visit to `visits.txt` in the replica's
//! data directory (a WASI preopen, `/data` unless `VISITS_DIR` says otherwise). Everything but
//! `spin_entry` is plain Rust, unit-tested natively.

pub mod app;
mod append_file;
pub mod durability;
pub mod file_log;
pub mod metrics;
pub mod moscow_time;
pub mod negotiate;
pub mod pages;
pub mod record;
pub mod replica_name;
pub mod sqlite_log;
mod synced_mark;
pub mod visit_chart;
pub mod visit_log;

#[cfg(target_arch = "wasm32")]
mod spin_entry;

/// Guest path of the data directory when `VISITS_DIR` is not set.
pub const DEFAULT_VISITS_DIR: &str = "/data";
