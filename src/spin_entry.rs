//! The only Spin-aware code: adapts a `wasi:http` request to `app::handle` and streams the reply.

use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use wasi::io::streams::{OutputStream, StreamError};

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
        return send(reply, log.as_ref(), out).await;
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
    let reply = app::handle(&request, log.as_ref(), &now_in_moscow());
    send(reply, log.as_ref(), out).await;
}

/// The default flavour: `visits.txt` in a preopened directory (Spin, wasmtime, our host),
/// synced as `VISITS_SYNC` says.
#[cfg(not(feature = "spin-sqlite"))]
fn store() -> Box<dyn VisitLog> {
    use crate::durability::{SyncMode, ENV};
    let dir = std::env::var("VISITS_DIR").unwrap_or_else(|_| crate::DEFAULT_VISITS_DIR.to_owned());
    match SyncMode::parse(std::env::var(ENV).ok().as_deref()) {
        Ok(sync) => Box::new(crate::file_log::FileLog::new(dir).with_sync(sync)),
        Err(e) => Box::new(crate::visit_log::MisconfiguredLog(e.to_string())),
    }
}

/// The Kubernetes flavour: Spin's SQLite store, whose file the runtime config puts on the
/// pod's volume (containerd-shim-spin mounts `files` read-only).
#[cfg(feature = "spin-sqlite")]
fn store() -> Box<dyn VisitLog> {
    Box::new(crate::sqlite_log::SqliteLog)
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
    if let Some(len) = reply.content_length() {
        headers.push(("content-length".to_owned(), len.to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers).expect("header names are static and valid");
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(reply.status.as_u16());
    let body = match reply.body {
        _ if reply.head_only => Vec::new(),
        Body::Bytes(bytes) => bytes,
        Body::Log(span) => {
            let outgoing = response.body().expect("the body is taken only here");
            out.set(response);
            match stream_log(log, span, &outgoing) {
                // Finished only when every record went out whole.
                Ok(()) => drop(OutgoingBody::finish(outgoing, None)),
                // Dropped unfinished: the runtime aborts the response (no final chunk), so
                // the client sees an error, never a body that merely looks short.
                Err(why) => eprintln!("response aborted: {why}"),
            }
            return;
        }
    };
    // A body held in memory goes into the stream and is finished before the head is handed
    // over when the stream takes it whole without waiting (`check-write`): the runtime then
    // sends head and body in one write and wakes the connection once, not twice. A larger one
    // (over the runtime's buffer) needs the client reading, so its head goes first.
    let outgoing = response.body().expect("the body is taken only here");
    let stream = outgoing.write().expect("a new body is writable");
    let fits = stream
        .check_write()
        .is_ok_and(|room| room >= body.len() as u64);
    let head = if fits {
        Some((response, out))
    } else {
        out.set(response);
        None
    };
    // Flushing never waits when the head is still ours: nobody could take the bytes yet.
    let written = write_all(&stream, &body).and_then(|()| match head {
        Some(_) => stream.flush(),
        None => stream.blocking_flush(),
    });
    if let Err(e) = written {
        eprintln!("response body not fully sent: {e}");
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
    if let Some((response, out)) = head {
        out.set(response);
    }
}

/// Writes all of `bytes`, as fast as the stream grants room (`check-write`).
fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let room = stream.check_write()?;
        if room == 0 {
            stream.subscribe().block();
            continue;
        }
        let (now, rest) = bytes.split_at(bytes.len().min(room as usize));
        stream.write(now)?;
        bytes = rest;
    }
    Ok(())
}

/// Sends the records of `span`, each chunk once it is checked; visits recorded meanwhile are
/// not sent.
fn stream_log(log: &dyn VisitLog, span: Span, body: &OutgoingBody) -> Result<(), String> {
    let stream = body
        .write()
        .map_err(|()| "the body is not writable".to_owned())?;
    for chunk in log.text_chunks(span).map_err(|e| e.to_string())? {
        let chunk = chunk.map_err(|e| e.to_string())?;
        write_all(&stream, &chunk).map_err(|e| e.to_string())?;
    }
    stream.blocking_flush().map_err(|e| e.to_string())
}
