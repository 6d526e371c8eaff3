//! The HTTP/1.1 listener every server in this host shares (a replica, the front): accept
//! loop, per-connection limits from `ConnLimits`, graceful drain on shutdown.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// Answers one request. Implemented by the replica (the component) and the front.
pub trait Handler: Send + Sync + 'static {
    type Body: Body<Data = Bytes, Error: Into<Box<dyn StdError + Send + Sync>>> + Send + 'static;

    fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
        client: std::net::SocketAddr,
    ) -> impl Future<Output = hyper::Response<Self::Body>> + Send;
}

/// What a single connection may cost before hyper refuses it.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Request line plus headers, in bytes: larger heads get 431 (or 414 for the URI alone).
    pub max_head_bytes: usize,
    /// Time a client gets to send a complete request head (slow-loris defence): then the
    /// connection is closed.
    pub head_timeout: Duration,
    /// Time one write to the client may stay blocked (a client that stopped reading): then
    /// the connection is closed.
    pub write_timeout: Duration,
    /// Time a shutdown waits for requests in flight before closing what is left.
    pub drain_timeout: Duration,
}

/// Serves `handler` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for in-flight requests (and the responses they are streaming) to finish, at most
/// `drain_timeout`; then the connections still open are closed.
pub async fn serve<H: Handler>(
    handler: Arc<H>,
    listener: TcpListener,
    limits: &ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of fds or a reset before accept: keep serving the others, and
                // pause so that running out of fds does not become a busy loop.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A client that stops reading blocks a write; past the deadline it fails and hyper
        // closes the connection (hyper has no write timeout of its own).
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let stream = Box::pin(stream);
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, std::convert::Infallible>(handler.handle(req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head_timeout)
            .max_buf_size(limits.max_head_bytes.max(8192))
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Clients that hang up mid-request are routine; nothing to report.
            let _ = conn.await;
        });
    }
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain: requests still in flight after {:?}; closing their connections",
            limits.drain_timeout
        );
    }
    Ok(())
}

/// `resp` with `Retry-After: 1`: the refusal clears by itself, the client should try again.
pub fn retry_later<B>(mut resp: hyper::Response<B>) -> hyper::Response<B> {
    resp.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    resp
}

/// A host-made error with the component's error body (`app_wasm::app::error_body`).
pub fn error_response<E: 'static>(
    status: StatusCode,
    message: &str,
) -> hyper::Response<UnsyncBoxBody<Bytes, E>> {
    let body = app_wasm::app::error_body(status, message);
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}
