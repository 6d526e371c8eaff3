//! The only Spin-aware code: adapts a `wasi:http` request to `app::handle` and streams the reply.

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use std::io::Read;

use crate::app::{self, Body, Reply};
use crate::file_log::FileLog;
use crate::moscow_time::now_in_moscow;

/// Chunk size when streaming the log: big enough for few host calls, small enough to keep the
/// instance's memory flat whatever the log's size.
const CHUNK: usize = 64 * 1024;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let method = req.method().to_string();
    let target = req.path_with_query().unwrap_or_else(|| "/".to_owned());
    let accept = joined_header(&req.headers(), "accept");
    let dir = std::env::var("VISITS_DIR").unwrap_or_else(|_| crate::DEFAULT_VISITS_DIR.to_owned());
    let log = FileLog::new(dir);
    let request = app::Request {
        method: &method,
        target: &target,
        accept: accept.as_deref(),
    };
    let reply = app::handle(&request, &log, &now_in_moscow());
    send(reply, &log, out).await;
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

async fn send(reply: Reply, log: &FileLog, out: ResponseOutparam) {
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
    let _ = response.set_status_code(reply.status);
    let mut sink = response.take_body();
    out.set(response);
    if reply.head_only {
        return;
    }
    let result = match reply.body {
        Body::Bytes(bytes) => sink.send(bytes).await,
        Body::Log { len } => stream_log(log, len, &mut sink).await,
    };
    if let Err(e) = result {
        eprintln!("response body not fully sent: {e}");
    }
}

/// Sends the first `len` bytes of the log; records appended meanwhile are not sent, so the
/// body matches the Content-Length already promised.
async fn stream_log<S: futures::Sink<Vec<u8>> + Unpin>(
    log: &FileLog,
    len: u64,
    sink: &mut S,
) -> Result<(), S::Error> {
    let Ok(Some((file, _))) = log.open_for_read() else {
        return Ok(());
    };
    let mut remaining = file.take(len);
    loop {
        let mut chunk = vec![0; CHUNK];
        match remaining.read(&mut chunk) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => {
                chunk.truncate(n);
                sink.send(chunk).await?;
            }
        }
    }
}
