//! The start-up scrub: before a replica serves its volume it checks every record of its log
//! once (`FileLog::scrub`), so what something other than app-wasm wrote among the synced
//! records is refused by every route, never counted or served. Requests check only what they
//! read (docs/storage.md); this covers the rest, once per start.

use std::path::Path;
use std::time::Instant;

use app_wasm::file_log::{FileLog, Scrubbed};
use app_wasm::visit_log::StoreError;
use hyper::StatusCode;
use tokio::sync::watch;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::server::{error_response, retry_later};

/// What the scrub concluded about one replica's log.
#[derive(Debug)]
enum Verdict {
    /// Every counted record is sound: requests go on to the component.
    Sound,
    /// Bytes among the counted records are not records: the volume's routes answer 503 until
    /// an operator repairs the log and restarts the replica.
    Damaged(StoreError),
    /// The log could not be read at start (the volume missing, an I/O error): requests go on
    /// and the component answers for the volume as it finds it.
    Unchecked,
}

/// One replica's scrub, running on a blocking-pool thread of its own from the replica's start.
pub struct StartupScrub {
    verdict: watch::Receiver<Option<Verdict>>,
    started: Instant,
}

impl StartupScrub {
    /// Starts checking the log in `dir`, first creating `dir` if `create`. A volume that
    /// hangs holds this one thread, and only this replica's requests wait for it.
    pub fn start(dir: &Path, create: bool, replica: &str) -> StartupScrub {
        let (send, verdict) = watch::channel(None);
        let (dir, replica) = (dir.to_owned(), replica.to_owned());
        let log = FileLog::new(&dir);
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            if create {
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    let dir = dir.display();
                    tracing::error!(replica, "creating data dir {dir}: {e}");
                }
            }
            // The host is not confined to the volume as the component is: a link is left to
            // the component, which sees where it leads from inside the volume (or cannot).
            let is_link =
                std::fs::symlink_metadata(log.log_path()).is_ok_and(|m| m.file_type().is_symlink());
            let verdict = if is_link {
                tracing::warn!(replica, "visit log not checked at start: it is a link");
                Verdict::Unchecked
            } else {
                verdict_of(log.scrub(), &replica, started)
            };
            send.send_replace(Some(verdict));
        });
        StartupScrub { verdict, started }
    }

    /// The host's answer for a request that uses the volume, if it must not reach the
    /// component: the log is damaged, or still being checked at the request's `deadline`
    /// (the request waits for the verdict until then, holding its place in flight).
    pub async fn refusal(&self, deadline: Instant, probe: bool) -> Option<Response> {
        let mut verdict = self.verdict.clone();
        let waited = tokio::time::timeout_at(deadline.into(), verdict.wait_for(Option::is_some));
        let not_ready = if probe { "not ready: " } else { "" };
        let why = match waited.await {
            Ok(Ok(verdict)) => match &*verdict {
                Some(Verdict::Damaged(e)) => format!("{not_ready}{e}"),
                _ => return None,
            },
            // The sender is gone only if the scrub's thread panicked: serve as unchecked.
            Ok(Err(_)) => return None,
            Err(_) => {
                let why = format!(
                    "{not_ready}still checking the visit log ({:.1?} since the replica \
                     started; a check that never ends means a stuck volume); retry",
                    self.started.elapsed()
                );
                return Some(retry_later(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &why,
                )));
            }
        };
        Some(error_response(StatusCode::SERVICE_UNAVAILABLE, &why))
    }
}

/// What a scrub's result means for the replica, said once in its log.
fn verdict_of(scrubbed: Result<Scrubbed, StoreError>, replica: &str, started: Instant) -> Verdict {
    match scrubbed {
        Ok(found) => {
            tracing::info!(
                replica,
                records = found.records,
                leftover_bytes = found.leftover_bytes,
                elapsed = ?started.elapsed(),
                "visit log checked: every record sound"
            );
            Verdict::Sound
        }
        Err(e @ StoreError::Damaged(_)) => {
            tracing::error!(
                replica,
                "{e}; every route but /healthz answers 503 until the log is repaired and the \
                 replica restarted"
            );
            Verdict::Damaged(e)
        }
        Err(e) => {
            tracing::warn!(replica, "visit log not checked at start: {e}");
            Verdict::Unchecked
        }
    }
}

type Response = hyper::Response<HyperOutgoingBody>;
