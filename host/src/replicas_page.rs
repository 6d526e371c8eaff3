//! The front's `GET /replicas`: every replica side by side in one HTML page, what the seed's
//! show script printed for its pods. A table of each replica's count and last visit, read
//! from its `/visits` now, and each replica's own page (its chart) in a frame beside the
//! others. A replica that does not answer is a row saying why, never a page that waits.

use std::time::Duration;

use app_wasm::pages::escape_html;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde::Deserialize;

use crate::front::Backend;

/// The path the front answers itself; every other one goes to a replica.
pub const PATH: &str = "/replicas";

/// How long the page waits for each replica's figures (all are asked at once).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Visits {
    visits: u64,
    last: Option<String>,
}

/// One replica's row: its figures, or why there are none.
struct Row<'a> {
    backend: &'a Backend,
    figures: Result<Visits, String>,
}

type AskClient = Client<HttpConnector, Empty<Bytes>>;

async fn ask(client: &AskClient, backend: &Backend) -> Result<Visits, String> {
    let req = hyper::Request::get(format!("http://{}/visits", backend.addr))
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::HOST, backend.addr.to_string())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e: hyper::Error| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            let why: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let why = why["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned();
            return Err(format!("{}: {why}", status.as_u16()));
        }
        serde_json::from_slice::<Visits>(&body).map_err(|e| format!("unreadable /visits: {e}"))
    };
    match tokio::time::timeout(ASK_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {ASK_TIMEOUT:?}")),
    }
}

/// The page, with every replica asked at once.
pub async fn render(backends: &[Backend]) -> Bytes {
    let client: AskClient =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
    let asks = backends.iter().map(|backend| {
        let client = client.clone();
        let backend = backend.clone();
        tokio::spawn(async move { ask(&client, &backend).await })
    });
    let mut rows = Vec::with_capacity(backends.len());
    for (backend, ask) in backends.iter().zip(asks.collect::<Vec<_>>()) {
        let figures = ask.await.unwrap_or_else(|e| Err(e.to_string()));
        rows.push(Row { backend, figures });
    }
    Bytes::from(page(&rows))
}

fn page(rows: &[Row]) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Every replica's visits</title>\n<style>body{font-family:system-ui,sans-serif;\
         margin:2rem;color:#222}table{border-collapse:collapse;margin-bottom:1.5rem}\
         th,td{padding:.2rem .8rem;text-align:left}td.n{text-align:right}.down{color:#a33}\
         .replicas{display:grid;grid-template-columns:repeat(auto-fill,minmax(34rem,1fr));gap:1rem}\
         iframe{width:100%;height:30rem;border:1px solid #ccc}</style></head>\n<body><main>\n\
         <h1>Every replica's visits</h1>\n<p>Each replica records only the visits it served, \
         on its own volume.</p>\n<table id=\"replicas\"><thead><tr><th scope=\"col\">Replica\
         </th><th scope=\"col\">Visits</th><th scope=\"col\">Last visit</th></tr></thead>\
         <tbody>\n",
    );
    for row in rows {
        let name = &row.backend.name;
        match &row.figures {
            Ok(v) => out.push_str(&format!(
                "<tr data-replica=\"{name}\"><th scope=\"row\">{name}</th>\
                 <td class=\"n\" data-visits=\"{n}\">{n}</td><td>{last}</td></tr>\n",
                n = v.visits,
                last = v.last.as_deref().unwrap_or("none yet"),
            )),
            Err(why) => out.push_str(&format!(
                "<tr data-replica=\"{name}\"><th scope=\"row\">{name}</th>\
                 <td class=\"down\" colspan=\"2\">not answering: {}</td></tr>\n",
                escape_html(why)
            )),
        }
    }
    out.push_str("</tbody></table>\n<div class=\"replicas\">\n");
    for row in rows {
        let (name, addr) = (&row.backend.name, row.backend.addr);
        out.push_str(&format!(
            "<iframe src=\"http://{addr}/visits?format=html\" title=\"Visits on {name}\" \
             loading=\"lazy\"></iframe>\n"
        ));
    }
    out.push_str("</div>\n</main></body></html>\n");
    out
}

/// The front's answer for `PATH`: the page for GET, its head for HEAD, 405 otherwise.
pub async fn respond(
    backends: &[Backend],
    method: &hyper::Method,
) -> hyper::Response<http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>> {
    use hyper::{Method, StatusCode};
    if method != Method::GET && method != Method::HEAD {
        let why = format!("{method} is not allowed on {PATH}; use GET or HEAD");
        let mut resp = crate::server::error_response(StatusCode::METHOD_NOT_ALLOWED, &why);
        resp.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return resp;
    }
    let page = render(backends).await;
    let length = page.len();
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        page
    };
    hyper::Response::builder()
        .header(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(hyper::header::CACHE_CONTROL, "no-store")
        .header(hyper::header::CONTENT_LENGTH, length)
        .body(
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(i: u16) -> Backend {
        Backend {
            name: format!("app-wasm-{i}"),
            addr: format!("127.0.0.1:{}", 8081 + i).parse().unwrap(),
        }
    }

    #[test]
    fn the_page_has_a_row_and_a_frame_per_replica_and_says_why_one_is_down() {
        let (b0, b1) = (backend(0), backend(1));
        let rows = [
            Row {
                backend: &b0,
                figures: Ok(Visits {
                    visits: 3,
                    last: Some("2026-11-27T08:03:19.12345+03:00".into()),
                }),
            },
            Row {
                backend: &b1,
                figures: Err("connection refused <x>".into()),
            },
        ];
        let page = page(&rows);
        assert!(page.contains("<td class=\"n\" data-visits=\"3\">3</td>"));
        assert!(page.contains("not answering: connection refused &lt;x&gt;"));
        assert!(page.contains(
            "<iframe src=\"http://127.0.0.1:8082/visits?format=html\" title=\"Visits on app-wasm-1\""
        ));
        assert_eq!(page.matches("<iframe").count(), 2);
        assert!(!page.contains("<script"));
    }
}
