//! The local twin of the LoadBalancer Service: one address that spreads requests over the
//! replicas. A request that never reached a replica (no connection could be made) is sent to
//! the next one, as a Service stops routing to an endpoint that is gone. A request that did
//! reach one is never sent again, whatever happened after: `GET /` records a visit, so a
//! resend could count it twice. Its client gets 502. The front answers one path itself:
//! `GET /replicas`, every replica side by side (`replicas_page`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use hyper::StatusCode;

use crate::server::{error_response, retry_later, Handler};

type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// How the front picks a replica for each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Balance {
    /// Each replica in turn.
    RoundRobin,
    /// A replica at random, as kube-proxy's iptables mode picks one per connection.
    Random,
}

/// One replica behind the front.
#[derive(Clone, Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
}

pub struct Front {
    backends: Vec<Backend>,
    balance: Balance,
    next: AtomicUsize,
    client: Client<HttpConnector, ProxyBody>,
}

/// Headers that describe one connection, not the request: never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

impl Front {
    pub fn new(backends: Vec<Backend>, balance: Balance) -> Self {
        assert!(!backends.is_empty(), "a front needs at least one replica");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Front {
            backends,
            balance,
            next: AtomicUsize::new(0),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The index of the replica to try first.
    fn pick(&self) -> usize {
        let n = self.backends.len();
        match self.balance {
            Balance::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Balance::Random => random_below(n),
        }
    }
}

impl Handler for Front {
    type Body = ProxyBody;

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
    ) -> hyper::Response<ProxyBody> {
        if let Some(refusal) = crate::edge::refusal(&req) {
            return error_response(refusal.status(), refusal.message());
        }
        if req.uri().path() == crate::replicas_page::PATH {
            return crate::replicas_page::respond(&self.backends, req.method()).await;
        }
        let (mut parts, body) = req.into_parts();
        for name in HOP_BY_HOP {
            parts.headers.remove(*name);
        }
        if let Ok(value) = HeaderValue::from_str(&client.ip().to_string()) {
            parts
                .headers
                .append(HeaderName::from_static("x-forwarded-for"), value);
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.to_string());
        // Only a request with no body can be sent again: its body is not consumed.
        let replayable = body.is_end_stream();
        let mut body = Some(body.boxed_unsync());
        let first = self.pick();
        let attempts = if replayable { self.backends.len() } else { 1 };
        let mut last_error = String::new();
        let mut reached = false;
        for attempt in 0..attempts {
            let backend = &self.backends[(first + attempt) % self.backends.len()];
            let mut forward = hyper::Request::from_parts(parts.clone(), ());
            *forward.uri_mut() = format!("http://{}{path}", backend.addr)
                .parse()
                .expect("an address and a parsed path form a URI");
            let body = body
                .take()
                .unwrap_or_else(|| Empty::new().map_err(|never| match never {}).boxed_unsync());
            match self.client.request(forward.map(|()| body)).await {
                Ok(resp) => {
                    tracing::info!(
                        replica = "front",
                        to = backend.name,
                        method = %parts.method,
                        target = %path,
                        status = resp.status().as_u16(),
                    );
                    return resp.map(|b| b.boxed_unsync());
                }
                Err(e) => {
                    last_error = format!("{}: {e}", backend.name);
                    // Connected means the replica may have acted on it: never resend.
                    if !e.is_connect() {
                        reached = true;
                        break;
                    }
                }
            }
        }
        tracing::warn!(
            replica = "front",
            method = %parts.method,
            target = %path,
            "no replica answered: {last_error}"
        );
        let unreachable = replayable && !reached;
        let resp = error_response(
            if unreachable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            },
            &if reached {
                format!("the replica failed mid-request and it was not resent ({last_error})")
            } else {
                format!("no replica could take the request ({last_error})")
            },
        );
        if unreachable {
            retry_later(resp)
        } else {
            resp
        }
    }
}

/// A uniform-enough pick for spreading load; not for anything secret.
fn random_below(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() % n as u64) as usize
}
