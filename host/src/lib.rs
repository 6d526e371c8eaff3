//! The one place app-wasm is embedded in wasmtime: the local runner, the tests and the
//! benches all serve the component through `Runtime` and `serve`.
//!
//! Shape follows `wasmtime serve`: compile and pre-instantiate once (`ProxyPre`), then a fresh
//! `Store` per request, one hyper HTTP/1.1 connection task per client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Where the component expects its data directory unless `VISITS_DIR` says otherwise.
pub const GUEST_DATA_DIR: &str = "/data";

/// The compiled component, ready to instantiate per request. Cheap to share (`Arc`).
pub struct Runtime {
    component: Component,
    pre: ProxyPre<RequestState>,
}

impl Runtime {
    /// Compiles the component at `wasm` and links WASI + WASI HTTP.
    pub fn load(wasm: &Path) -> Result<Self> {
        let engine = Engine::new(&Config::new())?;
        let component = Component::from_file(&engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading component {}", wasm.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Runtime { component, pre })
    }

    /// The interfaces the served component imports: what it could ever ask the host for.
    pub fn imports(&self) -> Vec<String> {
        imports_of(self.pre.engine(), &self.component)
    }
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
    /// Print one line per request to stdout.
    pub log_requests: bool,
}

impl ServeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            env: Vec::new(),
            log_requests: false,
        }
    }
}

struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
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

impl Runtime {
    /// Serves on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
    /// requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        config: ServeConfig,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let config = Arc::new(config);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    // Out of fds or a reset before accept: keep serving the others, and
                    // pause so that running out of fds does not become a busy loop.
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let runtime = self.clone();
            let config = config.clone();
            let service = hyper::service::service_fn(move |req| {
                let runtime = runtime.clone();
                let config = config.clone();
                async move { Ok::<_, Infallible>(runtime.handle(req, &config).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                // Clients that hang up mid-request are routine; nothing to report.
                let _ = conn.await;
            });
        }
        graceful.shutdown().await;
        Ok(())
    }

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        config: &ServeConfig,
    ) -> Response {
        let started = Instant::now();
        let method = req.method().clone();
        let target = req.uri().path_and_query().map(|p| p.to_string());
        let response = match self.call_component(req, config).await {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("component failed: {e:#}");
                error_response(500, "the component failed to handle the request")
            }
        };
        if config.log_requests {
            println!(
                "{method} {} {} {:.2?}",
                target.as_deref().unwrap_or("/"),
                response.status().as_u16(),
                started.elapsed()
            );
        }
        response
    }

    async fn call_component(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        config: &ServeConfig,
    ) -> Result<Response> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr().envs(&config.env);
        // Opened per request, so a volume that appears (or vanishes) is seen at once.
        if config.data_dir.is_dir() {
            wasi.preopened_dir(&config.data_dir, GUEST_DATA_DIR, FsPerms::ReadWrite)?;
        }
        let state = RequestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        // Its own task: the guest keeps streaming the body after the headers are sent.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => anyhow::bail!("component answered with error code {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("component returned without setting a response"),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("component trapped")),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// A host-made error in the component's JSON error shape.
fn error_response(status: u16, message: &str) -> Response {
    use http_body_util::BodyExt;
    let body = format!("{{\"error\":\"{message}\",\"status\":{status}}}\n");
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            http_body_util::Full::new(bytes::Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}

/// A server running in the background of the current Tokio runtime, for tests and benches.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningServer {
    /// Binds `addr` (port 0 picks a free one) and serves in a background task.
    pub async fn start(runtime: Arc<Runtime>, addr: &str, config: ServeConfig) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runtime.serve(listener, config, async {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting and waits for in-flight requests to finish.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}
