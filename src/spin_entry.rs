//! The only Spin-aware code: adapts a `wasi:http` request to `app::handle` and streams the reply.

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

use crate::app::{self, Body, Reply};
use crate::moscow_time::now_in_moscow;
use crate::visit_log::{Span, VisitLog};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let log = store();
    // Every runtime parses the request line first, so this only fails for a method that is
    // not an HTTP token at all.
    let Ok(method) = http::Method::from_bytes(req.method().to_string().as_bytes()) else {
        let reply = Reply::error(http::StatusCode::BAD_REQUEST, "the method is not a token");
        return send(reply, &log, out).await;
    };
    let target = req.path_with_query().unwrap_or_else(|| "/".to_owned());
    let accept = joined_header(&req.headers(), "accept");
    let replica = replica_name();
    let request = app::Request {
        method: &method,
        target: &target,
        accept: accept.as_deref(),
        replica: replica.as_deref(),
    };
    let reply = app::handle(&request, &log, &now_in_moscow());
    send(reply, &log, out).await;
}

/// The default flavour: `visits.txt` in a preopened directory (Spin, wasmtime, our host).
#[cfg(not(feature = "spin-sqlite"))]
fn store() -> crate::file_log::FileLog {
    let dir = std::env::var("VISITS_DIR").unwrap_or_else(|_| crate::DEFAULT_VISITS_DIR.to_owned());
    crate::file_log::FileLog::new(dir)
}

/// The Kubernetes flavour: Spin's SQLite store, whose file the runtime config puts on the
/// pod's volume (containerd-shim-spin mounts `files` read-only).
#[cfg(feature = "spin-sqlite")]
fn store() -> crate::sqlite_log::SqliteLog {
    crate::sqlite_log::SqliteLog
}

/// The pod name: `HOSTNAME` in the component's environment (the local runner, `wasmtime serve
/// --env`). Spin gives components no process environment, so under Spin (the Kubernetes image)
/// it comes from the Spin variable `replica`, which the shim fills from `SPIN_VARIABLE_REPLICA`.
fn replica_name() -> Option<String> {
    let from_env = crate::replica_name::name_from(std::env::var("HOSTNAME").ok().as_deref());
    #[cfg(feature = "spin-sqlite")]
    let from_env = from_env.or_else(|| {
        crate::replica_name::name_from(spin_sdk::variables::get("replica").ok().as_deref())
    });
    from_env
}

/// All values of a header, comma-joined as RFC 9110 allows for list headers.
fn joined_header(headers: &Fields, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get(name)
        .into_iter()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

async fn send(reply: Reply, log: &dyn VisitLog, out: ResponseOutparam) {
    let mut headers: Vec<(String, Vec<u8>)> = reply
        .headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone().into_bytes()))
        .collect();
    headers.push((
        "content-length".to_owned(),
        reply.body_len().to_string().into_bytes(),
    ));
    let fields = Fields::from_list(&headers).expect("header names are static and valid");
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(reply.status.as_u16());
    let mut sink = response.take_body();
    out.set(response);
    if reply.head_only {
        return;
    }
    let result = match reply.body {
        Body::Bytes(bytes) => sink.send(bytes).await,
        Body::Log(span) => stream_log(log, span, &mut sink).await,
    };
    if let Err(e) = result {
        eprintln!("response body not fully sent: {e}");
    }
}

/// Sends the records of `span`; visits recorded meanwhile are not sent, so the body matches
/// the Content-Length already promised.
async fn stream_log<S: futures::Sink<Vec<u8>> + Unpin>(
    log: &dyn VisitLog,
    span: Span,
    sink: &mut S,
) -> Result<(), S::Error> {
    let Ok(chunks) = log.text_chunks(span) else {
        return Ok(());
    };
    for chunk in chunks {
        sink.send(chunk).await?;
    }
    Ok(())
}
