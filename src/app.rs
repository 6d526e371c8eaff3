//! The HTTP contract of one replica, as plain Rust: a request in, a reply out. The Spin
//! adapter (`spin_entry`) only translates; everything testable lives here.

use serde::Serialize;

use crate::metrics::{self, LogFigures};
use crate::moscow_time::UTC_OFFSET;
use crate::negotiate;
use crate::record::RECORD_LEN;
use crate::visit_log::{self, StoreError, VisitLog};

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const GET_HEAD: &str = "GET, HEAD";

/// The parts of a request the contract looks at. The body is never read: no route takes one.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, e.g. `/visits?format=text`.
    pub target: &'a str,
    pub accept: Option<&'a str>,
    /// The replica serving it (the pod name), when the environment names one.
    pub replica: Option<&'a str>,
}

/// What to send back: the adapter streams `Log` bodies from the volume.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of the visit log (whole records only), after its first `skip` records.
    Log {
        skip: u64,
        len: u64,
    },
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// A HEAD request: send the headers a GET would get, and no body.
    pub head_only: bool,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: vec![
                ("content-type", content_type.to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: Body::Bytes(body),
            head_only: false,
        }
    }

    fn json(status: u16, value: &impl Serialize) -> Self {
        let mut body = serde_json::to_vec(value).expect("plain structs serialize");
        body.push(b'\n');
        Self::new(status, JSON, body)
    }

    pub fn error(status: u16, message: impl Into<String>) -> Self {
        #[derive(Serialize)]
        struct Error {
            error: String,
            status: u16,
        }
        Self::json(
            status,
            &Error {
                error: message.into(),
                status,
            },
        )
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::Log { len, .. } => *len,
        }
    }
}

impl From<StoreError> for Reply {
    fn from(err: StoreError) -> Self {
        let reply = Reply::error(err.status(), err.to_string());
        match err {
            // Busy clears in milliseconds; the others need an operator.
            StoreError::Busy(_) => reply.with_header("retry-after", "1"),
            _ => reply,
        }
    }
}

/// Serves one request. `now` is the Moscow timestamp to show and, for `GET /`, to record.
/// Every reply, errors included, names the replica that sent it.
pub fn handle(req: &Request, log: &dyn VisitLog, now: &str) -> Reply {
    let reply = route(req, log, now);
    match req.replica {
        Some(name) => reply.with_header("x-replica", name),
        None => reply,
    }
}

fn route(req: &Request, log: &dyn VisitLog, now: &str) -> Reply {
    let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
    let Some(route) = Route::from_path(path) else {
        return Reply::error(404, format!("no route for {path}"));
    };
    let head_only = match req.method {
        "GET" => false,
        "HEAD" => true,
        other => {
            return Reply::error(
                405,
                format!("{other} is not allowed on {path}; use GET or HEAD"),
            )
            .with_header("allow", GET_HEAD)
        }
    };
    let mut reply = match route {
        Route::Home => home(req, log, now, !head_only),
        Route::Visits => visits(req, query, log),
        Route::Health => Reply::json(200, &serde_json::json!({"status": "ok"})),
        Route::Ready => match log.check_ready() {
            Ok(()) => Reply::json(200, &serde_json::json!({"status": "ready"})),
            // Probes read the status alone: any reason not to send traffic here is a 503.
            Err(e) => Reply::error(503, format!("not ready: {e}")),
        },
        Route::Metrics => match log.summary() {
            Ok(s) => Reply::new(
                200,
                metrics::CONTENT_TYPE,
                metrics::render(&LogFigures {
                    visits: s.visits,
                    log_bytes: s.log_bytes,
                    torn_bytes: s.torn_bytes,
                })
                .into_bytes(),
            ),
            Err(e) => e.into(),
        },
    };
    reply.head_only = head_only;
    reply
}

enum Route {
    Home,
    Visits,
    Health,
    Ready,
    Metrics,
}

impl Route {
    fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/" => Route::Home,
            "/visits" => Route::Visits,
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/metrics" => Route::Metrics,
            _ => return None,
        })
    }
}

fn not_acceptable(offered: &[&str]) -> Reply {
    Reply::error(
        406,
        format!("can only answer with {}", offered.join(" or ")),
    )
}

fn home(req: &Request, log: &dyn VisitLog, now: &str, record: bool) -> Reply {
    const OFFERED: &[&str] = &[JSON, "text/html"];
    let Some(kind) = negotiate::choose(req.accept, OFFERED) else {
        return not_acceptable(OFFERED);
    };
    if record {
        if let Err(e) = log.append(now) {
            return e.into();
        }
    }
    if kind == JSON {
        #[derive(Serialize)]
        struct Home<'a> {
            moscow_time: &'a str,
            utc_offset: &'a str,
            recorded: bool,
            replica: Option<&'a str>,
        }
        let home = Home {
            moscow_time: now,
            utc_offset: UTC_OFFSET,
            recorded: record,
            replica: req.replica,
        };
        Reply::json(200, &home)
    } else {
        Reply::new(200, HTML, home_page(now, req.replica).into_bytes())
    }
}

/// `replica` is a checked name (`replica::name_from`): safe in HTML as is.
fn home_page(now: &str, replica: Option<&str>) -> String {
    let served_by = replica.map_or(String::new(), |r| format!(" by <code>{r}</code>"));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Moscow time</title></head>\n<body><h1>Current time in Moscow</h1>\n\
         <p><time datetime=\"{now}\">{now}</time> (UTC{UTC_OFFSET})</p>\n\
         <p>Your visit was recorded{served_by}. <a href=\"/visits\">Visits on this replica</a></p>\n\
         </body></html>\n"
    )
}

/// The most records `?tail=` returns in the JSON form, which is built in memory (the text
/// form streams any number).
pub const MAX_JSON_TAIL: u64 = 1000;

fn visits(req: &Request, query: &str, log: &dyn VisitLog) -> Reply {
    const OFFERED: &[&str] = &[JSON, "text/plain"];
    // `?format=` exists for clients that cannot set Accept (`kubectl get --raw`, a browser bar).
    let kind = match query_param(query, "format") {
        Some("json") => Some(JSON),
        Some("text") => Some("text/plain"),
        Some(other) => {
            return Reply::error(400, format!("format={other} is not one of: json, text"))
        }
        None => negotiate::choose(req.accept, OFFERED),
    };
    let Some(kind) = kind else {
        return not_acceptable(OFFERED);
    };
    let tail = match query_param(query, "tail").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) if kind != JSON || n <= MAX_JSON_TAIL => Some(n),
        Some(_) => {
            let limit = if kind == JSON {
                MAX_JSON_TAIL
            } else {
                u64::MAX
            };
            return Reply::error(
                400,
                format!("tail must be a whole number from 0 to {limit}"),
            );
        }
    };
    let summary = match log.summary() {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    // Both stores hold whole fixed-width records, so offsets follow from the count.
    let skip = tail.map_or(0, |n| summary.visits.saturating_sub(n));
    let len = (summary.visits - skip) * RECORD_LEN;
    if kind == JSON {
        #[derive(Serialize)]
        struct Visits<'a> {
            visits: u64,
            first: Option<String>,
            last: Option<String>,
            replica: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tail: Option<Vec<String>>,
        }
        let tail = match tail
            .map(|_| visit_log::timestamps(log, skip, len))
            .transpose()
        {
            Ok(tail) => tail,
            Err(e) => return e.into(),
        };
        Reply::json(
            200,
            &Visits {
                visits: summary.visits,
                first: summary.first,
                last: summary.last,
                replica: req.replica,
                tail,
            },
        )
    } else {
        let mut reply = Reply::new(200, TEXT, Vec::new());
        reply.body = Body::Log { skip, len };
        reply
    }
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_log::FileLog;

    const NOW: &str = "2026-11-27T08:03:19.12345+03:00";

    fn get<'a>(target: &'a str, accept: Option<&'a str>) -> Request<'a> {
        Request {
            method: "GET",
            target,
            accept,
            replica: None,
        }
    }

    fn body_json(reply: &Reply) -> serde_json::Value {
        match &reply.body {
            Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
            Body::Log { .. } => panic!("expected a JSON body"),
        }
    }

    #[test]
    fn home_records_once_and_head_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let reply = handle(&get("/", None), &log, NOW);
        assert_eq!(reply.status, 200);
        assert_eq!(body_json(&reply)["moscow_time"], NOW);
        let head = Request {
            method: "HEAD",
            target: "/",
            accept: None,
            replica: None,
        };
        let reply = handle(&head, &log, NOW);
        assert!(reply.head_only);
        assert_eq!(body_json(&reply)["recorded"], false);
        assert_eq!(log.summary().unwrap().visits, 1);
    }

    #[test]
    fn unacceptable_accept_is_406_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let reply = handle(&get("/", Some("image/png")), &log, NOW);
        assert_eq!(reply.status, 406);
        assert_eq!(body_json(&reply)["status"], 406);
        assert_eq!(log.summary().unwrap().visits, 0);
    }

    #[test]
    fn errors_are_json_with_status_and_405_has_allow() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let r = handle(&get("/nope", None), &log, NOW);
        assert_eq!(
            (r.status, body_json(&r)["status"].as_u64()),
            (404, Some(404))
        );
        let post = Request {
            method: "POST",
            target: "/",
            accept: None,
            replica: None,
        };
        let r = handle(&post, &log, NOW);
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(log.summary().unwrap().visits, 0);
        let r = handle(&get("/visits?format=xml", None), &log, NOW);
        assert_eq!(r.status, 400);
    }

    #[test]
    fn visits_text_form_serves_whole_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        log.append(NOW).unwrap();
        std::fs::write(log.log_path(), format!("{NOW}\n{}", &NOW[..9]).as_bytes()).unwrap();
        let r = handle(
            &get("/visits?format=text", Some("application/json")),
            &log,
            NOW,
        );
        assert_eq!(r.body, Body::Log { skip: 0, len: 32 });
        let r = handle(&get("/visits", Some("text/plain")), &log, NOW);
        assert_eq!(r.body, Body::Log { skip: 0, len: 32 });
        assert_eq!(
            body_json(&handle(&get("/visits", None), &log, NOW))["visits"],
            1
        );
    }

    #[test]
    fn tail_picks_the_latest_records_in_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let stamps: Vec<String> = (0..5)
            .map(|i| NOW.replace(".12345", &format!(".1234{i}")))
            .collect();
        for ts in &stamps {
            log.append(ts).unwrap();
        }
        let r = handle(&get("/visits?format=text&tail=2", None), &log, NOW);
        assert_eq!(r.body, Body::Log { skip: 3, len: 64 });
        let r = handle(&get("/visits?tail=9", Some("text/plain")), &log, NOW);
        assert_eq!(r.body, Body::Log { skip: 0, len: 160 });
        let json = body_json(&handle(&get("/visits?tail=2", None), &log, NOW));
        assert_eq!(json["tail"], serde_json::json!([stamps[3], stamps[4]]));
        assert_eq!(json["visits"], 5);
        let json = body_json(&handle(&get("/visits", None), &log, NOW));
        assert!(json.get("tail").is_none());
        for bad in ["tail=-1", "tail=x", "tail=1001", "tail="] {
            let r = handle(&get(&format!("/visits?{bad}"), None), &log, NOW);
            assert_eq!(r.status, 400, "{bad}");
        }
        let r = handle(&get("/visits?format=text&tail=5000", None), &log, NOW);
        assert_eq!(r.status, 200);
    }

    #[test]
    fn every_reply_names_the_replica() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        for (target, status) in [("/", 200), ("/visits", 200), ("/nope", 404)] {
            let req = Request {
                replica: Some("app-wasm-1"),
                ..get(target, None)
            };
            let r = handle(&req, &log, NOW);
            assert_eq!(r.status, status);
            assert_eq!(r.header("x-replica"), Some("app-wasm-1"), "{target}");
            if status == 200 {
                assert_eq!(body_json(&r)["replica"], "app-wasm-1");
            }
        }
        let html = Request {
            replica: Some("app-wasm-1"),
            ..get("/", Some("text/html"))
        };
        let Body::Bytes(page) = handle(&html, &log, NOW).body else {
            panic!("the home page is bytes");
        };
        assert!(String::from_utf8(page)
            .unwrap()
            .contains("<code>app-wasm-1</code>"));
        assert_eq!(handle(&get("/", None), &log, NOW).header("x-replica"), None);
    }

    #[test]
    fn store_errors_map_to_precise_statuses() {
        let cases = [
            (StoreError::Missing("x".into()), 503),
            (StoreError::ReadOnly("x".into()), 503),
            (StoreError::Unavailable("x".into()), 503),
            (StoreError::Full("x".into()), 507),
            (StoreError::Busy("x".into()), 503),
            (StoreError::Io("x".into()), 500),
        ];
        for (err, status) in cases {
            let reply = Reply::from(err.clone());
            assert_eq!(reply.status, status, "{err}");
            assert_eq!(body_json(&reply)["error"], err.to_string());
        }
        assert_eq!(
            Reply::from(StoreError::Busy("x".into())).header("retry-after"),
            Some("1")
        );
    }
}
