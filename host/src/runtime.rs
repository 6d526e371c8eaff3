//! The component, compiled once and instantiated per request: the shape of `wasmtime serve`
//! (`ProxyPre` once, a fresh `Store` per request), served as one replica by `Replica`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::{self, EngineOptions, Loaded};
use crate::limits::Limits;
use crate::server::{error_response, Handler};

/// How often the epoch advances: the resolution of the per-request deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Where the component expects its data directory unless `VISITS_DIR` says otherwise.
pub const GUEST_DATA_DIR: &str = "/data";

/// The compiled component, ready to instantiate per request. Cheap to share (`Arc`).
pub struct Runtime {
    component: Component,
    pre: ProxyPre<RequestState>,
    /// One permit per instance the engine can hold at once (the pool's slots), shared by
    /// every replica on this runtime: a request that finds none gets 503, not a failed
    /// instantiation.
    slots: Arc<Semaphore>,
}

impl Runtime {
    /// Compiles the component at `wasm` with the default engine (pooling sized for the
    /// default limits, no code cache) and links WASI + WASI HTTP.
    pub fn load(wasm: &Path) -> Result<Self> {
        let limits = Limits::default();
        Ok(Self::load_with(
            wasm,
            &EngineOptions::default(),
            &limits,
            limits.max_concurrent,
        )?
        .0)
    }

    /// As `load`, with the engine `options` chose, sized for `instances` concurrent requests.
    pub fn load_with(
        wasm: &Path,
        options: &EngineOptions,
        limits: &Limits,
        instances: usize,
    ) -> Result<(Self, Loaded)> {
        let engine = engine::engine(options, limits, instances)?;
        spawn_epoch_ticker(&engine);
        let (component, loaded) = engine::load_component(&engine, wasm, options)
            .with_context(|| format!("loading component {}", wasm.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        let slots = match options.allocator {
            engine::Allocator::Pooling => engine::pool_slots(instances),
            engine::Allocator::OnDemand => Semaphore::MAX_PERMITS,
        };
        let slots = Arc::new(Semaphore::new(slots));
        Ok((
            Runtime {
                component,
                pre,
                slots,
            },
            loaded,
        ))
    }

    /// Instantiates the component `n` times as a request would (fresh `Store`, WASI context,
    /// `ProxyPre`), without calling it: how long each took.
    pub async fn time_instantiation(&self, n: usize) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let mut store = RequestState::store(
                self.pre.engine(),
                WasiCtx::builder().build(),
                StoreLimitsBuilder::new().build(),
            );
            store.set_epoch_deadline(u64::MAX / 2);
            self.pre.instantiate_async(&mut store).await?;
            times.push(started.elapsed());
        }
        Ok(times)
    }

    /// The interfaces the served component imports: what it could ever ask the host for.
    pub fn imports(&self) -> Vec<String> {
        imports_of(self.pre.engine(), &self.component)
    }
}

/// Advances `engine`'s epoch every `EPOCH_TICK` until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// The interfaces a component imports, e.g. `wasi:filesystem/types@0.2.6`, read by compiling
/// it without linking: works for components this host cannot serve (the Spin SQLite flavour).
pub fn component_imports(wasm: &Path) -> Result<Vec<String>> {
    let engine = Engine::new(&Config::new())?;
    let component = Component::from_file(&engine, wasm).map_err(anyhow::Error::from)?;
    Ok(imports_of(&engine, &component))
}

fn imports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// How one server (one replica) runs the component.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Host directory preopened as `/data`. If it is missing at request time the component
    /// sees no `/data` and answers 503, as it would on a pod whose volume is not mounted.
    pub data_dir: PathBuf,
    /// Environment passed to the component (e.g. `VISITS_DIR`).
    pub env: Vec<(String, String)>,
    /// The replica's name (`app-wasm-0`): the component gets it as `HOSTNAME`, as a pod does.
    pub name: Option<String>,
    /// Print one line per request to stdout.
    pub log_requests: bool,
    pub limits: Limits,
}

impl ServeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            env: Vec::new(),
            name: None,
            log_requests: false,
            limits: Limits::default(),
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl RequestState {
    /// A fresh store for one request (or one timed instantiation), held to `limits`.
    fn store(engine: &Engine, wasi: WasiCtx, limits: StoreLimits) -> Store<RequestState> {
        let state = RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

type Response = hyper::Response<HyperOutgoingBody>;

/// One replica: the shared compiled component with this replica's volume and name.
pub struct Replica {
    runtime: Arc<Runtime>,
    config: ServeConfig,
    /// One permit per request in flight, held until the component has finished streaming.
    in_flight: Arc<Semaphore>,
}

impl Replica {
    pub fn new(runtime: Arc<Runtime>, config: ServeConfig) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.limits.max_concurrent));
        Replica {
            runtime,
            config,
            in_flight,
        }
    }

    /// The host's own answer when a request must not reach the component.
    fn refuse(&self, req: &mut hyper::Request<hyper::body::Incoming>) -> Option<Response> {
        // wasi:http needs an authority. HTTP/1.1 requires exactly one valid Host (RFC 9112
        // 3.2: 400 otherwise); HTTP/1.0 may omit it, so it gets this server's own name.
        let hosts = req.headers().get_all(hyper::header::HOST);
        if req.version() == hyper::Version::HTTP_10 && hosts.iter().next().is_none() {
            req.headers_mut().insert(
                hyper::header::HOST,
                hyper::header::HeaderValue::from_static("localhost"),
            );
        } else if let Err(why) = crate::edge::check_host(hosts.iter().map(|v| v.as_bytes())) {
            return Some(error_response(400, &why));
        }
        let limits = &self.config.limits;
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_body_bytes) {
            return Some(error_response(
                413,
                &format!(
                    "request body over {} bytes; no route takes a body",
                    limits.max_body_bytes
                ),
            ));
        }
        None
    }
}

impl Handler for Replica {
    type Body = HyperOutgoingBody;

    async fn handle(
        self: Arc<Self>,
        mut req: hyper::Request<hyper::body::Incoming>,
        _: SocketAddr,
    ) -> Response {
        let started = Instant::now();
        let method = req.method().clone();
        let target = req.uri().path_and_query().map(|p| p.to_string());
        let response = match self.refuse(&mut req) {
            Some(refusal) => Ok(refusal),
            None => match (
                self.in_flight.clone().try_acquire_owned(),
                self.runtime.slots.clone().try_acquire_owned(),
            ) {
                (Ok(permit), Ok(slot)) => {
                    let shown = target.as_deref().unwrap_or("/");
                    self.call_component(req, (permit, slot), shown).await
                }
                (Err(_), _) => Ok(busy(&format!(
                    "{} requests in flight",
                    self.config.limits.max_concurrent
                ))),
                (_, Err(_)) => Ok(busy("every instance slot of this host is in use")),
            },
        };
        let response = match response {
            Ok(resp) => resp,
            // Still waiting at the deadline: a stuck volume, most likely. Retry later.
            Err(e) if e.is::<DeadlinePassed>() => {
                eprintln!("{}: {e}", target.as_deref().unwrap_or("/"));
                let mut resp = error_response(503, &format!("{e}; is the data volume stuck?"));
                resp.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("1"),
                );
                resp
            }
            Err(e) => {
                eprintln!("component failed: {e:#}");
                error_response(500, "the component failed to handle the request")
            }
        };
        if self.config.log_requests {
            println!(
                "{}{method} {} {} {:.2?}",
                self.config
                    .name
                    .as_deref()
                    .map(|n| format!("{n} "))
                    .unwrap_or_default(),
                target.as_deref().unwrap_or("/"),
                response.status().as_u16(),
                started.elapsed()
            );
        }
        response
    }
}

impl Replica {
    async fn call_component(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        permit: (OwnedSemaphorePermit, OwnedSemaphorePermit),
        target: &str,
    ) -> Result<Response> {
        let config = &self.config;
        let mut wasi = WasiCtx::builder();
        // File calls run on Tokio's blocking pool (bounded, 512 threads), never on the async
        // workers: a stuck volume or a FIFO in place of the log then holds one pool thread,
        // not the worker that /healthz and every other replica also need.
        wasi.inherit_stderr()
            .envs(&config.env)
            .allow_blocking_current_thread(false);
        if let Some(name) = &config.name {
            wasi.env("HOSTNAME", name);
        }
        // Opened per request, so a volume that appears (or vanishes) is seen at once.
        if config.data_dir.is_dir() {
            wasi.preopened_dir(&config.data_dir, GUEST_DATA_DIR, FsPerms::ReadWrite)?;
        }
        let pre = self.runtime.pre.clone();
        let limits = StoreLimitsBuilder::new()
            .memory_size(config.limits.memory_bytes())
            .build();
        let mut store = RequestState::store(pre.engine(), wasi.build(), limits);
        // Every tick a busy guest yields to Tokio, so a runaway cannot starve the other
        // requests on its worker thread; past its deadline it is stopped (Interrupt traps).
        let deadline = Instant::now() + config.limits.request_timeout();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                // tokio::task::yield_now lets the I/O driver run before this guest resumes.
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        // Its own task: the guest keeps streaming the body after the headers are sent. The
        // deadline covers all of it: a guest waiting on a stuck volume or on a client that
        // stopped reading is dropped then, and its slot freed (the epoch only stops a guest
        // that is running).
        let timeout = config.limits.request_timeout();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let exchange = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            tokio::time::timeout_at(deadline.into(), exchange)
                .await
                .map_err(|_| DeadlinePassed(timeout))
        });
        match receiver.await {
            Ok(Ok(resp)) => {
                // The head is sent; a trap or the deadline while streaming can only be logged.
                let target = target.to_owned();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(Ok(()))) => {}
                        Ok(Ok(Err(e))) => eprintln!(
                            "{target}: component failed after the response head was sent: {e:#}"
                        ),
                        Ok(Err(e)) => eprintln!("{target}: {e}; the response was cut short"),
                        Err(e) => eprintln!("{target}: component task failed: {e}"),
                    }
                });
                Ok(resp)
            }
            Ok(Err(code)) => anyhow::bail!("component answered with error code {code:?}"),
            Err(_) => match task.await {
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

/// 503 when every permit is taken: the client should retry, a probe should look elsewhere.
fn busy(why: &str) -> Response {
    let mut resp = error_response(503, &format!("server busy: {why}; retry"));
    resp.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    resp
}
