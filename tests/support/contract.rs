//! The HTTP contract of one replica, checked against any runtime serving the component on
//! `base`, with what is on the volume read directly as the ground truth. Starts empty.

use std::path::Path;

use chrono::{DateTime, Utc};
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
        let file = match self {
            Volume::Dir(dir) => dir.join("visits.txt"),
            Volume::Sqlite(db) => db.to_path_buf(),
        };
        std::fs::metadata(file).map_or(0, |m| m.len())
    }
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

pub async fn check_contract(base: &str, volume: Volume<'_>) {
    let http = client();
    let url = |path: &str| format!("{base}{path}");
    assert!(
        volume.records().is_empty(),
        "contract check needs an empty volume"
    );

    // GET / with no Accept, */* and a browser's Accept: JSON, JSON, HTML; one visit each.
    let before = Utc::now();
    let resp = http.get(url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_content_type(&resp, "application/json");
    let home: Value = resp.json().await.unwrap();
    let shown = DateTime::parse_from_rfc3339(home["moscow_time"].as_str().unwrap()).unwrap();
    assert_eq!(shown.offset().local_minus_utc(), 3 * 3600, "{home}");
    let drift = (shown.with_timezone(&Utc) - before).num_seconds().abs();
    assert!(drift < 5, "shown time is {drift}s away from now");
    assert_eq!(home["recorded"], true);
    let recorded = volume.records();
    assert_eq!(recorded, [home["moscow_time"].as_str().unwrap()]);

    let resp = http
        .get(url("/"))
        .header(header::ACCEPT, "*/*")
        .send()
        .await
        .unwrap();
    assert_content_type(&resp, "application/json");
    let resp = http
        .get(url("/"))
        .header(header::ACCEPT, BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_content_type(&resp, "text/html");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Moscow") && page.contains("+03:00"), "{page}");
    assert_eq!(volume.records().len(), 3);

    // HEAD: a GET's status and headers, no body, no visit.
    for path in ["/", "/visits", "/metrics", "/healthz"] {
        let get = http.get(url(path)).send().await.unwrap();
        let get_type = get.headers()[header::CONTENT_TYPE].clone();
        let head = http.head(url(path)).send().await.unwrap();
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
    }
    assert_eq!(volume.records().len(), 4, "only the GET / above may record");

    // /visits: JSON summary matches the file; the text form is the file itself.
    let records = volume.records();
    let visits: Value = http
        .get(url("/visits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(visits["visits"], records.len() as u64, "{visits}");
    assert_eq!(visits["first"], records[0].as_str());
    assert_eq!(visits["last"], records[records.len() - 1].as_str());
    let on_disk: String = records.iter().map(|r| format!("{r}\n")).collect();
    for req in [
        http.get(url("/visits"))
            .header(header::ACCEPT, "text/plain"),
        http.get(url("/visits?format=text")),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_content_type(&resp, "text/plain");
        assert_eq!(resp.text().await.unwrap(), on_disk);
    }
    // ?tail=N: the latest N records, in both forms; works on every store.
    let latest: String = records[2..].iter().map(|r| format!("{r}\n")).collect();
    let resp = http
        .get(url("/visits?format=text&tail=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), latest);
    let resp = http.get(url("/visits?tail=2")).send().await.unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["tail"],
        serde_json::json!(records[2..])
    );
    for bad in ["format=yaml", "tail=-1", "tail=many"] {
        let resp = http
            .get(url(&format!("/visits?{bad}")))
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST).await;
    }

    // Probes.
    let resp = http.get(url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = http.get(url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ready");
    if let Volume::Dir(dir) = volume {
        let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert_eq!(
            left.len(),
            1,
            "readiness probe must leave only visits.txt: {left:?}"
        );
    }

    // Metrics, as Prometheus scrapes them.
    let resp = http
        .get(url("/metrics"))
        .header(
            header::ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_content_type(&resp, "text/plain; version=0.0.4");
    let text = resp.text().await.unwrap();
    let n = records.len();
    assert!(
        text.contains(&format!("\napp_wasm_visits_total {n}\n")),
        "{text}"
    );
    let bytes = volume.store_bytes();
    assert!(
        text.contains(&format!(
            "
app_wasm_visits_log_bytes {bytes}
"
        )),
        "{text}"
    );
    assert!(
        text.contains("# TYPE app_wasm_visits_total counter\n"),
        "{text}"
    );

    // Errors: precise status, JSON body, nothing recorded.
    assert_error(
        http.get(url("/nope")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        http.get(url("/visits/")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let resp = http
        .get(url("/"))
        .header(header::ACCEPT, "image/png")
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_ACCEPTABLE).await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let resp = http.request(method.clone(), url("/")).send().await.unwrap();
        assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD", "{method}");
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    // A large body on a route that takes none: refused without being read into memory, by
    // the component (405) or by a host that checks Content-Length first (ours: 413).
    let big = vec![b'x'; 8 << 20];
    let resp = http.post(url("/visits")).body(big).send().await;
    if let Ok(resp) = resp {
        let status = resp.status();
        assert!(
            [
                StatusCode::METHOD_NOT_ALLOWED,
                StatusCode::PAYLOAD_TOO_LARGE
            ]
            .contains(&status),
            "{status}"
        );
        assert_error(resp, status).await;
    } // a server may also close the connection on an unread body; either way no visit
    assert_eq!(volume.records().len(), n, "errors must not record visits");
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
