//! The one place app-wasm is embedded in wasmtime: the local runner, the tests and the
//! benches all serve the component through `Runtime` and `server::serve`.
//!
//! - `engine`: the wasmtime engine (pooling allocator, code cache, epoch ticker).
//! - `runtime`: the component compiled once and linked (`ProxyPre`).
//! - `replica_server`: one replica over HTTP: admission, a fresh `Store` per request, deadline.
//! - `request_metrics`: requests by route and status, and their latency, for `/metrics`.
//! - `scrub`: each replica's whole log checked once at start, before its volume is served.
//! - `server`: the shared HTTP/1.1 accept loop with connection limits and graceful drain.
//! - `edge`: what a request must look like before it reaches a replica or the front.
//! - `front`: the load-balancing front over several replicas (the Service's twin);
//!   `replicas_page`: its `GET /replicas`, every replica side by side.
//! - `replica_set` and `up`: `app-wasm up --replicas N`; `show`: every replica's visits.
//! - `telemetry`: log lines, and a span per request over OTLP when `OTEL_*` asks for it.
//! - `introspect`: a component's imports; `bench_timing`: instantiation timing for bench/run.

pub mod bench_timing;
pub mod edge;
pub mod engine;
pub mod front;
pub mod introspect;
pub mod limits;
pub mod replica_server;
pub mod replica_set;
pub mod replicas_page;
pub mod request_metrics;
pub mod runtime;
pub mod scrub;
pub mod server;
pub mod show;
pub mod telemetry;
pub mod term;
pub mod up;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

pub use introspect::component_imports;
pub use limits::Limits;
pub use replica_server::{ReplicaServer, ServeConfig};
pub use runtime::Runtime;
pub use server::ConnLimits;

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
