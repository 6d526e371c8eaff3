//! The HTTP contract of one replica, as plain Rust: a request in, a reply out. The Spin
//! adapter (`spin_entry`) only translates; everything testable lives here.

use http::{Method, StatusCode};
use serde::Serialize;

use crate::metrics;
use crate::moscow_time::UTC_OFFSET;
use crate::negotiate;
use crate::pages;
use crate::visit_chart;
use crate::visit_log::{self, Span, StoreError, VisitLog};

const GET_HEAD: &str = "GET, HEAD";

/// The forms a route can answer in, chosen by `Accept` or `?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Html,
    Text,
}

impl Format {
    /// The media type `Accept` names it by.
    fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Html => "text/html",
            Format::Text => "text/plain",
        }
    }

    /// The `Content-Type` it is sent with.
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Text => "text/plain; charset=utf-8",
        }
    }

    /// The best of `offered` (first = default) for an `Accept` header; `None`: a 406.
    fn negotiate(accept: Option<&str>, offered: &[Format]) -> Option<Format> {
        negotiate::choose_by(accept, offered, Format::media_type)
    }
}

/// The parts of a request the contract looks at. The body is never read: no route takes one.
pub struct Request<'a> {
    pub method: &'a Method,
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
    /// These records of the visit log, in its text form.
    Log(Span),
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// A HEAD request: send the headers a GET would get, and no body.
    pub head_only: bool,
}

impl Reply {
    fn new(status: StatusCode, content_type: &str, body: Vec<u8>) -> Self {
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

    fn json(status: StatusCode, value: &impl Serialize) -> Self {
        Self::new(status, Format::Json.content_type(), json_line(value))
    }

    pub fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(
            status,
            Format::Json.content_type(),
            error_body(status, &message.into()),
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

    /// The `Content-Length` to announce: none for the log's text form, which is streamed
    /// and checked as it goes, so a bad record can abort it rather than end it short.
    pub fn content_length(&self) -> Option<u64> {
        match &self.body {
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Log(_) => None,
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

fn json_line(value: &impl Serialize) -> Vec<u8> {
    let mut body = serde_json::to_vec(value).expect("plain structs serialize");
    body.push(b'\n');
    body
}

/// Every error's body, the component's and the local runner's alike:
/// `{"error": "...", "status": N}` and a newline.
pub fn error_body(status: StatusCode, message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Error<'a> {
        error: &'a str,
        status: u16,
    }
    json_line(&Error {
        error: message,
        status: status.as_u16(),
    })
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
        return Reply::error(StatusCode::NOT_FOUND, format!("no route for {path}"));
    };
    let head_only = match *req.method {
        Method::GET => false,
        Method::HEAD => true,
        ref other => {
            return Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{other} is not allowed on {path}; use GET or HEAD"),
            )
            .with_header("allow", GET_HEAD)
        }
    };
    let mut reply = match route {
        Route::Home => home(req, log, now, !head_only),
        Route::Visits => visits(req, query, log, now),
        Route::Health => Reply::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Route::Ready => match log.check_ready() {
            Ok(()) => Reply::json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
            // Probes read the status alone: any reason not to send traffic here is a 503.
            Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
        },
        Route::Metrics => match log.summary() {
            Ok(s) => Reply::new(
                StatusCode::OK,
                metrics::CONTENT_TYPE,
                metrics::render(&s).into_bytes(),
            ),
            Err(e) => e.into(),
        },
    };
    reply.head_only = head_only;
    reply
}

/// The paths this contract answers; anything else is a 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    Home,
    Visits,
    Health,
    Ready,
    Metrics,
}

/// Whether answering `path` may touch the visit store. A host that opens the volume per
/// request (ours) skips it otherwise, so liveness (`/healthz`) never waits on a hung volume.
pub fn path_uses_volume(path: &str) -> bool {
    Route::from_path(path).is_some_and(|route| !matches!(route, Route::Health))
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Home,
        Route::Visits,
        Route::Health,
        Route::Ready,
        Route::Metrics,
    ];

    /// The route of a request path (without its query), if the contract has one.
    pub fn from_path(path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|route| route.path() == path)
    }

    pub fn path(self) -> &'static str {
        match self {
            Route::Home => "/",
            Route::Visits => "/visits",
            Route::Health => "/healthz",
            Route::Ready => "/readyz",
            Route::Metrics => "/metrics",
        }
    }
}

fn not_acceptable(offered: &[Format]) -> Reply {
    let types: Vec<&str> = offered.iter().map(|f| f.media_type()).collect();
    Reply::error(
        StatusCode::NOT_ACCEPTABLE,
        format!("can only answer with {}", types.join(" or ")),
    )
}

fn home(req: &Request, log: &dyn VisitLog, now: &str, record: bool) -> Reply {
    const OFFERED: &[Format] = &[Format::Json, Format::Html];
    let Some(format) = Format::negotiate(req.accept, OFFERED) else {
        return not_acceptable(OFFERED);
    };
    if record {
        if let Err(e) = log.append(now) {
            return e.into();
        }
    }
    if format == Format::Json {
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
        return Reply::json(StatusCode::OK, &home);
    }
    // The visit is recorded: a figure that cannot be read now leaves a gap in the page,
    // never an error that would make the client visit again.
    let summary = log.summary();
    let summary = summary.as_ref().ok();
    let facts = pages::Facts {
        now,
        replica: req.replica,
        visits: summary.map_or(0, |s| s.visits),
        first: summary.and_then(|s| s.first.as_deref()),
        last: summary.and_then(|s| s.last.as_deref()),
        hours: last_day(log, now).map_err(|e| e.to_string()),
    };
    html(pages::home(&facts, record))
}

fn html(page: String) -> Reply {
    Reply::new(
        StatusCode::OK,
        Format::Html.content_type(),
        page.into_bytes(),
    )
}

/// Visits per hour over the 24 hours up to `now`: 25 binary searches of the log.
fn last_day(log: &dyn VisitLog, now: &str) -> Result<Vec<visit_chart::Hour>, StoreError> {
    let bounds = visit_chart::hour_bounds(now)
        .ok_or_else(|| StoreError::Io(format!("the clock gave {now:?}, not a time")))?;
    let before = log.visits_before(&bounds)?;
    Ok(visit_chart::hours(&bounds, &before))
}

/// The most records `?tail=` returns in the JSON form, which is built in memory (the text
/// form streams any number).
pub const MAX_JSON_TAIL: u64 = 1000;

fn visits(req: &Request, query: &str, log: &dyn VisitLog, now: &str) -> Reply {
    const OFFERED: &[Format] = &[Format::Json, Format::Text, Format::Html];
    // `?format=` exists for clients that cannot set Accept (`kubectl get --raw`, a browser bar).
    let format = match query_param(query, "format") {
        Some("json") => Some(Format::Json),
        Some("text") => Some(Format::Text),
        Some("html") => Some(Format::Html),
        Some(other) => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                format!("format={other} is not one of: json, text, html"),
            )
        }
        None => Format::negotiate(req.accept, OFFERED),
    };
    let Some(format) = format else {
        return not_acceptable(OFFERED);
    };
    let json = format == Format::Json;
    let tail = match query_param(query, "tail").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) if !json || n <= MAX_JSON_TAIL => Some(n),
        Some(_) => {
            let limit = if json { MAX_JSON_TAIL } else { u64::MAX };
            return Reply::error(
                StatusCode::BAD_REQUEST,
                format!("tail must be a whole number from 0 to {limit}"),
            );
        }
    };
    let summary = match log.summary() {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    if format == Format::Html {
        let hours = match last_day(log, now) {
            Ok(hours) => hours,
            Err(e) => return e.into(),
        };
        return html(pages::visits(&pages::Facts {
            now,
            replica: req.replica,
            visits: summary.visits,
            first: summary.first.as_deref(),
            last: summary.last.as_deref(),
            hours: Ok(hours),
        }));
    }
    let span = Span::latest(summary.visits, tail);
    if json {
        #[derive(Serialize)]
        struct Visits<'a> {
            visits: u64,
            first: Option<String>,
            last: Option<String>,
            replica: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tail: Option<Vec<String>>,
        }
        let tail = match tail.map(|_| visit_log::timestamps(log, span)).transpose() {
            Ok(tail) => tail,
            Err(e) => return e.into(),
        };
        Reply::json(
            StatusCode::OK,
            &Visits {
                visits: summary.visits,
                first: summary.first,
                last: summary.last,
                replica: req.replica,
                tail,
            },
        )
    } else {
        let mut reply = Reply::new(StatusCode::OK, Format::Text.content_type(), Vec::new());
        reply.body = Body::Log(span);
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
            method: &Method::GET,
            target,
            accept,
            replica: None,
        }
    }

    fn body_json(reply: &Reply) -> serde_json::Value {
        match &reply.body {
            Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
            Body::Log(_) => panic!("expected a JSON body"),
        }
    }

    #[test]
    fn a_misconfigured_store_fails_every_volume_route_but_not_liveness() {
        let log = crate::visit_log::MisconfiguredLog("VISITS_SYNC=\"x\" is neither".into());
        let home = handle(&get("/", None), &log, NOW);
        assert_eq!(home.status, StatusCode::INTERNAL_SERVER_ERROR);
        let error = body_json(&home)["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("misconfigured") && error.contains("VISITS_SYNC"),
            "{error}"
        );
        let ready = handle(&get("/readyz", None), &log, NOW);
        assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
        for target in ["/visits", "/metrics"] {
            let reply = handle(&get(target, None), &log, NOW);
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{target}");
        }
        assert_eq!(
            handle(&get("/healthz", None), &log, NOW).status,
            StatusCode::OK
        );
    }

    #[test]
    fn only_liveness_and_unknown_paths_answer_without_the_volume() {
        for path in ["/", "/visits", "/readyz", "/metrics"] {
            assert!(path_uses_volume(path), "{path}");
        }
        // A missing volume: what the host gives a route it does not open the volume for.
        let missing = FileLog::new(std::path::Path::new("/nonexistent/app-wasm"));
        for (path, status) in [
            ("/healthz", StatusCode::OK),
            ("/nope", StatusCode::NOT_FOUND),
        ] {
            assert!(!path_uses_volume(path), "{path}");
            assert_eq!(
                handle(&get(path, None), &missing, NOW).status,
                status,
                "{path}"
            );
        }
    }

    #[test]
    fn home_records_once_and_head_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let reply = handle(&get("/", None), &log, NOW);
        assert_eq!(reply.status.as_u16(), 200);
        assert_eq!(body_json(&reply)["moscow_time"], NOW);
        let head = Request {
            method: &Method::HEAD,
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
        assert_eq!(reply.status.as_u16(), 406);
        assert_eq!(body_json(&reply)["status"], 406);
        assert_eq!(log.summary().unwrap().visits, 0);
    }

    #[test]
    fn errors_are_json_with_status_and_405_has_allow() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let r = handle(&get("/nope", None), &log, NOW);
        assert_eq!(
            (r.status.as_u16(), body_json(&r)["status"].as_u64()),
            (404, Some(404))
        );
        let post = Request {
            method: &Method::POST,
            target: "/",
            accept: None,
            replica: None,
        };
        let r = handle(&post, &log, NOW);
        assert_eq!(r.status.as_u16(), 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(log.summary().unwrap().visits, 0);
        let r = handle(&get("/visits?format=xml", None), &log, NOW);
        assert_eq!(r.status.as_u16(), 400);
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
        assert_eq!(
            r.body,
            Body::Log(Span {
                skip: 0,
                records: 1
            })
        );
        let r = handle(&get("/visits", Some("text/plain")), &log, NOW);
        assert_eq!(
            r.body,
            Body::Log(Span {
                skip: 0,
                records: 1
            })
        );
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
        assert_eq!(
            r.body,
            Body::Log(Span {
                skip: 3,
                records: 2
            })
        );
        let r = handle(&get("/visits?tail=9", Some("text/plain")), &log, NOW);
        assert_eq!(
            r.body,
            Body::Log(Span {
                skip: 0,
                records: 5
            })
        );
        let json = body_json(&handle(&get("/visits?tail=2", None), &log, NOW));
        assert_eq!(json["tail"], serde_json::json!([stamps[3], stamps[4]]));
        assert_eq!(json["visits"], 5);
        let json = body_json(&handle(&get("/visits", None), &log, NOW));
        assert!(json.get("tail").is_none());
        for bad in ["tail=-1", "tail=x", "tail=1001", "tail="] {
            let r = handle(&get(&format!("/visits?{bad}"), None), &log, NOW);
            assert_eq!(r.status.as_u16(), 400, "{bad}");
        }
        let r = handle(&get("/visits?format=text&tail=5000", None), &log, NOW);
        assert_eq!(r.status.as_u16(), 200);
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
            assert_eq!(r.status.as_u16(), status);
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
            .contains("<code id=\"replica\">app-wasm-1</code>"));
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
