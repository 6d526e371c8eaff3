//! The HTTP contract of one replica, checked against any runtime serving the component on
//! `base`, with what is on the volume read directly as the ground truth. Starts empty.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use reqwest::{header, Method, StatusCode};
use serde_json::Value;

use super::{client, read_records};

/// Where the replica's visits are, as the host sees them.
pub enum Volume<'a> {
    /// The default flavour: the data dir holding `visits.txt`.
    Dir(&'a Path),
    /// The Spin SQLite flavour: the database file the runtime config names.
    Sqlite(&'a Path),
}

impl Volume<'_> {
    pub fn records(&self) -> Vec<String> {
        match self {
            Volume::Dir(dir) => read_records(&dir.join("visits.txt")),
            Volume::Sqlite(db) => super::sqlite_records(db),
        }
    }

    /// Bytes the store takes, as `app_wasm_visits_log_bytes` must report.
    fn store_bytes(&self) -> u64 {
        match self {
            Volume::Dir(dir) => std::fs::metadata(dir.join("visits.txt")).map_or(0, |m| m.len()),
            // The database's pages, those still in the WAL included: the file itself lags
            // until a checkpoint copies them in.
            Volume::Sqlite(db) if db.exists() => rusqlite::Connection::open_with_flags(
                db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|conn| {
                conn.query_row(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                    [],
                    |row| row.get(0),
                )
            })
            .expect("reading the SQLite store's size"),
            Volume::Sqlite(_) => 0,
        }
    }
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Runs every check of the contract in order and reports all failures at the end, not only
/// the first: each check is named, and the panic message of each failed one is kept.
pub async fn check_contract(base: &str, volume: Volume<'_>) {
    assert!(
        volume.records().is_empty(),
        "contract check needs an empty volume"
    );
    let c = Ctx {
        http: client(),
        base,
        volume,
    };
    let mut failed = Vec::new();
    let mut ran = 0;
    macro_rules! check {
        ($name:ident) => {
            ran += 1;
            if let Err(panic) = AssertUnwindSafe($name(&c)).catch_unwind().await {
                failed.push(format!("{}: {}", stringify!($name), panic_message(&panic)));
            }
        };
    }
    check!(root_records_one_visit_per_negotiated_form);
    check!(head_matches_get_and_records_nothing);
    check!(visits_summary_and_text_equal_the_volume);
    check!(tail_serves_the_latest_records);
    check!(html_pages_count_the_volume_hour_by_hour);
    check!(visits_refuses_a_bad_query);
    check!(probes_answer_ready_and_leave_nothing_behind);
    check!(metrics_equal_the_volume);
    check!(errors_are_precise_and_record_nothing);
    assert!(
        failed.is_empty(),
        "{} of {ran} contract checks failed on {base}:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

/// What every check gets: the client, the replica's URL, and the volume to read.
struct Ctx<'a> {
    http: reqwest::Client,
    base: &'a str,
    volume: Volume<'a>,
}

impl Ctx<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    async fn get_accepting(&self, path: &str, accept: &str) -> reqwest::Response {
        let req = self.http.get(self.url(path)).header(header::ACCEPT, accept);
        req.send().await.unwrap()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    match (panic.downcast_ref::<String>(), panic.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (_, Some(s)) => (*s).to_owned(),
        _ => "panicked".into(),
    }
}

/// GET / with no Accept, */* and a browser's Accept: JSON, JSON, HTML; one visit each, and
/// the time shown is the time recorded, byte for byte.
async fn root_records_one_visit_per_negotiated_form(c: &Ctx<'_>) {
    let before_count = c.volume.records().len();
    let before = Utc::now();
    let resp = c.get("/").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_content_type(&resp, "application/json");
    let home: Value = resp.json().await.unwrap();
    let shown_text = home["moscow_time"].as_str().unwrap();
    let shown = DateTime::parse_from_rfc3339(shown_text).unwrap();
    assert_eq!(shown.offset().local_minus_utc(), 3 * 3600, "{home}");
    let drift = (shown.with_timezone(&Utc) - before).num_seconds().abs();
    assert!(drift < 5, "shown time is {drift}s away from now");
    assert_eq!(home["recorded"], true);
    assert_eq!(
        c.volume.records().last().map(String::as_str),
        Some(shown_text)
    );

    let resp = c.get_accepting("/", "*/*").await;
    assert_content_type(&resp, "application/json");
    let resp = c.get_accepting("/", BROWSER_ACCEPT).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_content_type(&resp, "text/html");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Moscow") && page.contains("+03:00"), "{page}");
    assert_eq!(c.volume.records().len(), before_count + 3);
}

/// HEAD: a GET's status and headers, no body, no visit.
async fn head_matches_get_and_records_nothing(c: &Ctx<'_>) {
    for path in ["/", "/visits", "/metrics", "/healthz"] {
        let get = c.get(path).await;
        let get_type = get.headers()[header::CONTENT_TYPE].clone();
        let before = c.volume.records().len();
        let head = c.http.head(c.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(
            head.headers()[header::CONTENT_TYPE],
            get_type,
            "HEAD {path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} sent a body"
        );
        assert_eq!(c.volume.records().len(), before, "HEAD {path} recorded");
    }
}

/// /visits: the JSON summary matches the volume; the text form is the log itself.
async fn visits_summary_and_text_equal_the_volume(c: &Ctx<'_>) {
    c.get("/").await;
    let records = c.volume.records();
    let visits: Value = c.get("/visits").await.json().await.unwrap();
    assert_eq!(visits["visits"], records.len() as u64, "{visits}");
    assert_eq!(visits["first"], records[0].as_str());
    assert_eq!(visits["last"], records[records.len() - 1].as_str());
    let on_disk: String = records.iter().map(|r| format!("{r}\n")).collect();
    for resp in [
        c.get_accepting("/visits", "text/plain").await,
        c.get("/visits?format=text").await,
    ] {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_content_type(&resp, "text/plain");
        assert_eq!(resp.text().await.unwrap(), on_disk);
    }
}

/// ?tail=N: the latest N records, in both forms, on every store.
async fn tail_serves_the_latest_records(c: &Ctx<'_>) {
    c.get("/").await;
    c.get("/").await;
    let records = c.volume.records();
    let latest = &records[records.len() - 2..];
    let text = c.get("/visits?format=text&tail=2").await.text().await;
    let lines: String = latest.iter().map(|r| format!("{r}\n")).collect();
    assert_eq!(text.unwrap(), lines);
    let json: Value = c.get("/visits?tail=2").await.json().await.unwrap();
    assert_eq!(json["tail"], serde_json::json!(latest));
}

async fn visits_refuses_a_bad_query(c: &Ctx<'_>) {
    for bad in ["format=yaml", "tail=-1", "tail=many"] {
        assert_error(
            c.get(&format!("/visits?{bad}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

/// Liveness and readiness; the readiness probe's write leaves no file behind.
async fn probes_answer_ready_and_leave_nothing_behind(c: &Ctx<'_>) {
    assert_eq!(c.get("/healthz").await.status(), StatusCode::OK);
    let resp = c.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ready");
    if let Volume::Dir(dir) = c.volume {
        let mut left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".visits.synced", "visits.txt"],
            "readiness probe must leave only the log and its synced mark"
        );
    }
}

/// The HTML form of `/visits` (a browser's Accept, or `?format=html`): the count on the
/// volume, and 24 hourly bars that together hold every visit of this run (made just now).
async fn html_pages_count_the_volume_hour_by_hour(c: &Ctx<'_>) {
    c.get("/").await;
    for resp in [
        c.get_accepting("/visits", BROWSER_ACCEPT).await,
        c.get("/visits?format=html").await,
    ] {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_content_type(&resp, "text/html");
        let page = resp.text().await.unwrap();
        let n = c.volume.records().len();
        assert!(
            page.contains(&format!("<strong id=\"visits\">{n}</strong>")),
            "no count {n} in\n{page}"
        );
        let bars: Vec<u64> = page
            .split("data-visits=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(bars.len(), 24, "{page}");
        assert_eq!(bars.iter().sum::<u64>(), n as u64, "bars {bars:?}");
        assert!(!page.contains("<script"), "no script");
    }
}

/// Metrics, as Prometheus scrapes them, agree with the volume.
async fn metrics_equal_the_volume(c: &Ctx<'_>) {
    let prometheus =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let resp = c.get_accepting("/metrics", prometheus).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_content_type(&resp, "text/plain; version=0.0.4");
    let text = resp.text().await.unwrap();
    let n = c.volume.records().len();
    let bytes = c.volume.store_bytes();
    for line in [
        "# TYPE app_wasm_visits_total counter".to_owned(),
        format!("app_wasm_visits_total {n}"),
        format!("app_wasm_visits_log_bytes {bytes}"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

/// Errors: precise status, JSON body, nothing recorded.
async fn errors_are_precise_and_record_nothing(c: &Ctx<'_>) {
    let n = c.volume.records().len();
    assert_error(c.get("/nope").await, StatusCode::NOT_FOUND).await;
    assert_error(c.get("/visits/").await, StatusCode::NOT_FOUND).await;
    let resp = c.get_accepting("/", "image/png").await;
    assert_error(resp, StatusCode::NOT_ACCEPTABLE).await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let resp = c
            .http
            .request(method.clone(), c.url("/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD", "{method}");
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    // A large body on a route that takes none: refused without being read into memory, by
    // the component (405) or by a host that checks Content-Length first (ours: 413).
    let big = vec![b'x'; 8 << 20];
    if let Ok(resp) = c.http.post(c.url("/visits")).body(big).send().await {
        let status = resp.status();
        let refused = [
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::PAYLOAD_TOO_LARGE,
        ];
        assert!(refused.contains(&status), "{status}");
        assert_error(resp, status).await;
    } // a server may also close the connection on an unread body; either way no visit
    assert_eq!(c.volume.records().len(), n, "errors must not record visits");
}

fn assert_content_type(resp: &reqwest::Response, prefix: &str) {
    let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        ct.starts_with(prefix),
        "content-type {ct:?}, wanted {prefix:?}"
    );
}

/// An error reply: the status, and the JSON `{"error": "...", "status": N}` body.
pub async fn assert_error(resp: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status);
    assert_content_type(&resp, "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    let message = body["error"].as_str().expect("error message").to_owned();
    assert!(!message.is_empty());
    message
}
