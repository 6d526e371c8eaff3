//! `app-wasm show`: every replica's visits, as the seed's show script printed them. A running
//! replica is asked over HTTP (what it serves is the truth); a stopped one is read from its
//! data dir with the component's own log reader.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use app_wasm::file_log::FileLog;
use app_wasm::visit_log::{timestamps, Span, VisitLog};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::replica_set::{ordinal_of, State};
use crate::term::Style;

/// One replica's visits, however they were read.
#[derive(Debug, Serialize)]
pub struct ReplicaReport {
    pub name: String,
    pub state: ReplicaState,
    pub url: Option<String>,
    pub data_dir: PathBuf,
    pub visits: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// The latest visits, oldest first.
    pub tail: Vec<String>,
}

/// How a report was read; `--json` prints it in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Answered over HTTP.
    Running,
    /// Read from its data dir.
    Stopped,
}

/// Every replica under `root` (its `app-wasm-<i>` dirs and those `replicas.json` lists), in
/// ordinal order, with its latest `tail` visits.
pub async fn collect(root: &Path, tail: u64) -> Result<Vec<ReplicaReport>> {
    let state = State::load(root);
    let mut names: Vec<String> = state.replicas.iter().map(|r| r.name.clone()).collect();
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && ordinal_of(&name).is_some() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by_key(|n| ordinal_of(n));
    let mut reports = Vec::new();
    for name in names {
        let running = state.replicas.iter().find(|r| r.name == name);
        let data_dir = running.map_or_else(|| root.join(&name), |r| r.data_dir.clone());
        let over_http = match running {
            Some(r) => ask(&r.url, &name, tail).await.ok(),
            None => None,
        };
        let report = match over_http {
            Some(v) => ReplicaReport {
                name,
                state: ReplicaState::Running,
                url: running.map(|r| r.url.clone()),
                data_dir,
                visits: v.visits,
                first: v.first,
                last: v.last,
                tail: v.tail.unwrap_or_default(),
            },
            None => read_dir(name, data_dir, tail)?,
        };
        reports.push(report);
    }
    Ok(reports)
}

#[derive(Deserialize)]
struct VisitsJson {
    visits: u64,
    first: Option<String>,
    last: Option<String>,
    replica: Option<String>,
    tail: Option<Vec<String>>,
}

/// `GET /visits?tail=N` on a replica; an error unless the replica there is `name`.
async fn ask(base: &str, name: &str, tail: u64) -> Result<VisitsJson> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!(
        "{base}/visits?tail={}",
        tail.min(app_wasm::app::MAX_JSON_TAIL)
    )
    .parse()?;
    let req = hyper::Request::get::<hyper::Uri>(uri)
        .header("accept", "application/json")
        .body(Empty::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req)).await??;
    anyhow::ensure!(
        resp.status().is_success(),
        "{base} answered {}",
        resp.status()
    );
    let body = resp.into_body().collect().await?.to_bytes();
    let visits: VisitsJson = serde_json::from_slice(&body)?;
    anyhow::ensure!(
        visits.replica.as_deref() == Some(name),
        "{base} is not {name}"
    );
    Ok(visits)
}

fn read_dir(name: String, data_dir: PathBuf, tail: u64) -> Result<ReplicaReport> {
    let log = FileLog::new(&data_dir);
    let summary = log
        .summary()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {}", data_dir.display()))?;
    let tail = timestamps(&log, Span::latest(summary.visits, Some(tail)))?;
    Ok(ReplicaReport {
        name,
        state: ReplicaState::Stopped,
        url: None,
        data_dir,
        visits: summary.visits,
        first: summary.first,
        last: summary.last,
        tail,
    })
}

/// The human form: per replica a heading line and its latest visits, then the total.
pub fn render(reports: &[ReplicaReport], style: &Style) -> String {
    let mut out = String::new();
    for r in reports {
        let whence = match &r.url {
            Some(url) => format!("running at {url}"),
            None => "stopped".to_owned(),
        };
        let state = if r.state == ReplicaState::Running {
            style.green(&whence)
        } else {
            style.yellow(&whence)
        };
        out += &format!(
            "{}: {} visits  {}\n",
            style.bold(&r.name),
            r.visits,
            style.dim(&format!("({state}; data in {})", r.data_dir.display()))
        );
        for ts in &r.tail {
            out += &format!("  {ts}\n");
        }
        out.push('\n');
    }
    let total: u64 = reports.iter().map(|r| r.visits).sum();
    out += &format!("{} replicas, {total} visits in total\n", reports.len());
    out
}
