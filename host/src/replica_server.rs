//! One replica as an HTTP server: what the host checks before the component sees a request
//! (Host, body size, admission), the per-request `Store` with its deadline, and the log line.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use app_wasm::durability::{self, SyncMode};
use app_wasm::DEFAULT_VISITS_DIR;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::limits::Limits;
use crate::request_metrics::{RequestMetrics, RouteLabel};
use crate::runtime::{RequestState, Runtime};
use crate::scrub::StartupScrub;
use crate::server::{self, error_response, retry_later, Handler};

impl Runtime {
    /// Serves this component as one replica on `listener` until `shutdown` resolves, then
    /// stops accepting and lets in-flight requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        config: ServeConfig,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let conn = config.limits.conn();
        let replica = Arc::new(ReplicaServer::new(self, config));
        server::serve(replica.clone(), listener, &conn, shutdown).await?;
        replica.wait_for_guests(GUEST_EXIT_WAIT).await;
        Ok(())
    }
}

/// How one server (one replica) runs the component.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Host directory preopened as `/data`. If it is missing at request time the component
    /// sees no `/data` and answers 503, as it would on a pod whose volume is not mounted.
    pub data_dir: PathBuf,
    /// The replica's name (`app-wasm-0`): the component gets it as `HOSTNAME`, as a pod does.
    pub name: Option<String>,
    /// What a visit's 200 waits for: the component gets it as `VISITS_SYNC`.
    pub sync: SyncMode,
    pub limits: Limits,
    /// Create `data_dir` at start (`up` does), on the replica's own start-up thread: a volume
    /// that hangs from the start holds that replica only, never the runner's start.
    pub create_data_dir: bool,
}

impl ServeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            name: None,
            sync: SyncMode::default(),
            limits: Limits::default(),
            create_data_dir: false,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

type Response = hyper::Response<HyperOutgoingBody>;

/// After the drain, how long a replica waits for guests still running (their connections
/// are closed, so they end at their next write) before it stops without them.
const GUEST_EXIT_WAIT: Duration = Duration::from_secs(1);

/// How long past a request's deadline the host waits for its thread before answering for
/// it: ten epoch ticks, enough for a running guest to be interrupted.
const STUCK_CALL_GRACE: Duration = Duration::from_millis(100);

/// One replica's HTTP server: the shared compiled component with this replica's volume and
/// name, and its own admission limits.
pub struct ReplicaServer {
    runtime: Arc<Runtime>,
    config: ServeConfig,
    /// One permit per request in flight, held until the component has finished streaming.
    in_flight: Arc<Semaphore>,
    /// One permit per guest running before its response head (`--max-running`).
    running: Arc<Semaphore>,
    /// Set once the replica has drained: guests still running (their clients gone) end at
    /// their next await instead of at their deadline.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The whole log checked once from the start; the volume is served once it is sound.
    scrub: StartupScrub,
    /// Requests by route and status, and their latency, for this replica's `/metrics`.
    metrics: RequestMetrics,
}

/// What a request holds while the component serves it: its place among this replica's
/// requests in flight and an instance slot of the shared engine.
struct Admission {
    _in_flight: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

impl ReplicaServer {
    pub fn new(runtime: Arc<Runtime>, config: ServeConfig) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.limits.max_concurrent));
        let running = Arc::new(Semaphore::new(config.limits.running()));
        let name = config.name.as_deref().unwrap_or("-");
        let scrub = StartupScrub::start(&config.data_dir, config.create_data_dir, name);
        ReplicaServer {
            runtime,
            config,
            in_flight,
            running,
            stopping: tokio::sync::watch::Sender::new(false),
            scrub,
            metrics: RequestMetrics::default(),
        }
    }

    /// The host's own answer when a request must not reach the component.
    fn refuse(&self, req: &mut hyper::Request<hyper::body::Incoming>) -> Option<Response> {
        if let Some(refusal) = crate::edge::refusal(req) {
            return Some(error_response(refusal.status(), refusal.message()));
        }
        // wasi:http needs an authority: an HTTP/1.0 request without one gets this server's.
        if !req.headers().contains_key(hyper::header::HOST) {
            req.headers_mut()
                .insert(hyper::header::HOST, HeaderValue::from_static("localhost"));
        }
        let limits = &self.config.limits;
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_body_bytes) {
            let why = format!(
                "request body over {} bytes; no route takes a body",
                limits.max_body_bytes
            );
            return Some(error_response(StatusCode::PAYLOAD_TOO_LARGE, &why));
        }
        None
    }

    /// Tells the guests still running to end (the drain is over: their connections are
    /// closed) and waits until none runs (each holds an in-flight permit on its thread), at
    /// most `limit`: the runtime must outlive every guest it drives. A guest stuck in a
    /// system call is left behind, and said so.
    async fn wait_for_guests(&self, limit: Duration) {
        self.stopping.send_replace(true);
        let all = self.config.limits.max_concurrent as u32;
        if tokio::time::timeout(limit, self.in_flight.acquire_many(all))
            .await
            .is_err()
        {
            let running = all as usize - self.in_flight.available_permits();
            tracing::warn!(
                replica = self.name(),
                "{running} request(s) still running after the drain (a stuck volume?); \
                 stopping without them"
            );
        }
    }

    /// A place in flight and an instance slot, or why none is free now.
    fn admit(&self) -> Result<Admission, Busy> {
        let max = self.config.limits.max_concurrent;
        let in_flight =
            (self.in_flight.clone().try_acquire_owned()).map_err(|_| Busy::InFlight(max))?;
        let slot = (self.runtime.slots.clone().try_acquire_owned()).map_err(|_| Busy::NoSlot)?;
        Ok(Admission {
            _in_flight: in_flight,
            _slot: slot,
        })
    }
}

/// Why a request was not admitted: both are a 503 the client should retry.
enum Busy {
    /// This replica has `--max-concurrent` requests in flight.
    InFlight(usize),
    /// Every instance slot of the shared engine is taken (all replicas together).
    NoSlot,
}

impl Busy {
    fn response(&self) -> Response {
        let why = match self {
            Busy::InFlight(max) => format!("server busy: {max} requests in flight; retry"),
            Busy::NoSlot => "server busy: every instance slot of this host is in use; retry".into(),
        };
        retry_later(error_response(StatusCode::SERVICE_UNAVAILABLE, &why))
    }
}

impl Handler for ReplicaServer {
    type Body = HyperOutgoingBody;

    async fn handle(
        self: Arc<Self>,
        mut req: hyper::Request<hyper::body::Incoming>,
        _: SocketAddr,
    ) -> Response {
        let started = Instant::now();
        let method = req.method().clone();
        let route = RouteLabel::of_path(req.uri().path());
        // Exported over OTLP when it is on (crate::telemetry); otherwise disabled right here.
        let span = tracing::info_span!(
            target: crate::telemetry::SPAN_TARGET,
            "request",
            otel.name = %crate::telemetry::SpanName(&method, route.route()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.route = route.route(),
            url.path = req.uri().path(),
            http.response.status_code = tracing::field::Empty,
            app_wasm.replica = self.name(),
        );
        let target = req
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string());
        let outcome = match self.refuse(&mut req) {
            Some(refusal) => Ok(refusal),
            None => match self.admit() {
                Ok(admission) => self.call_component(req, admission, &target).await,
                Err(busy) => Ok(busy.response()),
            },
        };
        let mut response = match outcome {
            Ok(resp) => resp,
            // Still waiting at the deadline: a stuck volume, most likely. Retry later.
            Err(e) if e.is::<DeadlinePassed>() => {
                tracing::warn!(replica = self.name(), %target, "{e}");
                let why = format!("{e}; is the data volume stuck?");
                retry_later(error_response(StatusCode::SERVICE_UNAVAILABLE, &why))
            }
            Err(e) => {
                tracing::error!(replica = self.name(), %target, "component failed: {e:#}");
                let why = "the component failed to handle the request";
                error_response(StatusCode::INTERNAL_SERVER_ERROR, why)
            }
        };
        // The component names itself on its replies; the host's own answers say it too.
        if let Some(name) = &self.config.name {
            if !response.headers().contains_key("x-replica") {
                if let Ok(value) = HeaderValue::from_str(name) {
                    response.headers_mut().insert("x-replica", value);
                }
            }
        }
        let elapsed = started.elapsed();
        self.metrics.record(route, response.status(), elapsed);
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        tracing::info!(
            replica = self.name(),
            %method,
            %target,
            status = response.status().as_u16(),
            ?elapsed,
        );
        if route.is_metrics() && response.status() == StatusCode::OK {
            response = self.with_request_metrics(response, method).await;
        }
        response
    }
}

impl ReplicaServer {
    /// The component's `/metrics` (what the volume holds) followed by the runner's request
    /// metrics of this replica. The component's part is a few hundred bytes, already made
    /// when its head is out, and ends by the request's deadline at the latest.
    async fn with_request_metrics(&self, response: Response, method: hyper::Method) -> Response {
        let (mut parts, body) = response.into_parts();
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
        if method == hyper::Method::HEAD {
            // No body to extend, and the length a GET would get is not known: announce none.
            return Response::from_parts(parts, body);
        }
        let mut text = match body.collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(e) => {
                tracing::error!(
                    replica = self.name(),
                    "/metrics: the component's body failed: {e}"
                );
                let why = "the component failed to send its metrics";
                return error_response(StatusCode::INTERNAL_SERVER_ERROR, why);
            }
        };
        text.extend_from_slice(self.metrics.render().as_bytes());
        parts
            .headers
            .insert(hyper::header::CONTENT_LENGTH, text.len().into());
        let body = Full::new(Bytes::from(text)).map_err(|never| match never {});
        Response::from_parts(parts, body.boxed_unsync())
    }

    /// The replica's name for log lines.
    fn name(&self) -> &str {
        self.config.name.as_deref().unwrap_or("-")
    }

    /// A fresh `Store` for one request: this replica's volume preopened as `/data` (opened
    /// per request, so a volume that appears or vanishes is seen at once; only for routes
    /// that use it, so a hung volume cannot fail liveness), its name, its memory cap, and its
    /// deadline.
    fn request_store(
        &self,
        deadline: Instant,
        uses_volume: bool,
    ) -> wasmtime::Result<Store<RequestState>> {
        let config = &self.config;
        let mut wasi = WasiCtx::builder();
        // File calls run right here: this is a blocking-pool thread of this request's own
        // (see `call_component`), never an async worker.
        wasi.inherit_stderr().allow_blocking_current_thread(true);
        if let Some(name) = &config.name {
            wasi.env("HOSTNAME", name);
        }
        wasi.env(durability::ENV, config.sync.name());
        if uses_volume && config.data_dir.is_dir() {
            wasi.preopened_dir(&config.data_dir, DEFAULT_VISITS_DIR, FsPerms::ReadWrite)?;
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(config.limits.memory_bytes())
            .build();
        let mut store = RequestState::store(self.runtime.pre.engine(), wasi.build(), limits);
        // Every tick a busy guest yields, so the deadline below can fire; past its deadline a
        // running guest is stopped (Interrupt traps).
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        Ok(store)
    }

    /// Runs the component for one request, when its turn comes (`--max-running`), on a
    /// blocking-pool thread of its own (bounded by Tokio's pool, 512 threads), driving its
    /// async parts with the runtime's handle. Its file calls are then plain system calls on
    /// that thread: no hop to another thread per call (four or five per visit), and a stuck
    /// volume or a FIFO in place of the log holds only this thread, never an async worker
    /// that /healthz and every other replica need.
    /// The deadline covers the whole exchange, streaming to a slow reader included.
    async fn call_component(
        self: &Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
        admission: Admission,
        target: &str,
    ) -> Result<Response> {
        let timeout = self.config.limits.request_timeout();
        let deadline = Instant::now() + timeout;
        let uses_volume = app_wasm::app::path_uses_volume(req.uri().path());
        if uses_volume {
            let probe = req.uri().path() == "/readyz";
            if let Some(refusal) = self.scrub.refusal(deadline, probe).await {
                return Ok(refusal);
            }
        }
        // Its turn to run: waiting is part of the request's time, so a replica whose guests
        // are stuck on its volume answers 503 at the deadline, never later. Liveness waits
        // for nothing.
        let turn = if uses_volume {
            let wait = self.running.clone().acquire_owned();
            match tokio::time::timeout_at(deadline.into(), wait).await {
                Ok(permit) => Some(permit.expect("the semaphore is never closed")),
                Err(_) => return Err(DeadlinePassed(timeout).into()),
            }
        } else {
            None
        };
        // The turn is shared with the thread: it ends when the head is out (below) or when the
        // thread does, whichever comes first. A thread stuck in the volume past its deadline
        // keeps its turn, so a hung volume pins at most `--max-running` threads of the pool
        // that every replica shares, however many clients keep coming.
        let turn = Arc::new(std::sync::Mutex::new(turn));
        let thread_turn = turn.clone();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (replica, handle) = (self.clone(), tokio::runtime::Handle::current());
        let mut stopping = self.stopping.subscribe();
        let task = tokio::task::spawn_blocking(move || {
            let _admission = admission;
            let _turn = thread_turn;
            handle.block_on(async move {
                let exchange = async {
                    let mut store = replica.request_store(deadline, uses_volume)?;
                    let req = store
                        .data_mut()
                        .http()
                        .new_incoming_request(Scheme::Http, req)?;
                    let out = store.data_mut().http().new_response_outparam(sender)?;
                    let proxy = replica.runtime.pre.instantiate_async(&mut store).await?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await
                };
                tokio::select! {
                    done = tokio::time::timeout_at(deadline.into(), exchange) => {
                        done.map_err(|_| DeadlinePassed(timeout))
                    }
                    _ = stopping.wait_for(|stop| *stop) => {
                        Ok(Err(wasmtime::Error::msg("the replica stopped")))
                    }
                }
            })
        });
        // A thread stuck in a system call cannot see its own deadline: this side answers
        // for it, and the thread (with its permits) is released when the call returns. The
        // grace lets a guest that is running or waiting end itself at the deadline first
        // (500 for a runaway stopped by its epoch, 503 for a wait), as without a stuck call.
        let stuck_after = deadline + STUCK_CALL_GRACE;
        let head = tokio::time::timeout_at(stuck_after.into(), receiver).await;
        match head {
            Err(_) => Err(DeadlinePassed(timeout).into()),
            Ok(Ok(Ok(resp))) => {
                // The head is out: the next guest may run. A body still streaming to a slow
                // reader must not hold the turn of every visit.
                turn.lock().unwrap_or_else(|p| p.into_inner()).take();
                // A trap or the deadline while streaming can only be logged.
                let (replica, target) = (self.name().to_owned(), target.to_owned());
                tokio::spawn(async move {
                    let why = match task.await {
                        Ok(Ok(Ok(()))) => return,
                        Ok(Ok(Err(e))) => {
                            format!("component failed after the response head was sent: {e:#}")
                        }
                        Ok(Err(e)) => format!("{e}; the response was cut short"),
                        Err(e) => format!("component task failed: {e}"),
                    };
                    tracing::error!(replica, target, "{why}");
                });
                Ok(resp)
            }
            Ok(Ok(Err(code))) => anyhow::bail!("component answered with error code {code:?}"),
            Ok(Err(_)) => match task.await {
                Ok(Ok(Ok(()))) => anyhow::bail!("component returned without setting a response"),
                Ok(Ok(Err(e))) => Err(anyhow::Error::from(e).context("component trapped")),
                Ok(Err(deadline)) => Err(deadline.into()),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// A request still waiting (on the volume, on the client) when its deadline came.
#[derive(Debug)]
pub struct DeadlinePassed(pub Duration);

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request ran past its {:?} deadline", self.0)
    }
}

impl std::error::Error for DeadlinePassed {}
