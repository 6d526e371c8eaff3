//! `app-wasm up`: compile the component once, start the replicas (each its own volume dir,
//! port and name) and, for more than one, the front; on shutdown drain the front first, then
//! every replica, so nothing in flight is cut.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::{EngineOptions, Loaded};
use clap::ValueEnum;

use crate::front::{Backend, Balance, Front};
use crate::limits::Limits;
use crate::replica_server::ServeConfig;
use crate::replica_set::{plan, RunningReplica, State};
use crate::runtime::Runtime;
use crate::server;
use crate::term::Style;
use app_wasm::durability::SyncMode;
use app_wasm::DEFAULT_VISITS_DIR;

pub struct UpOptions {
    pub wasm: PathBuf,
    pub listen: String,
    /// The data root: replica i keeps its visits in `<data>/app-wasm-<i>/`.
    pub data: PathBuf,
    pub replicas: usize,
    pub balance: Balance,
    /// What a visit's 200 waits for, in every replica.
    pub sync: SyncMode,
    pub limits: Limits,
    pub engine: EngineOptions,
}

pub async fn up(opts: UpOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let style = Style::for_stdout();
    if !opts.wasm.exists() {
        anyhow::bail!(
            "no component at {}: build it with `cargo build --release --target wasm32-wasip2`",
            opts.wasm.display()
        );
    }
    let listen = tokio::net::lookup_host(&opts.listen)
        .await
        .with_context(|| format!("resolving --listen {}", opts.listen))?
        .next()
        .with_context(|| format!("--listen {} resolves to no address", opts.listen))?;
    let plans = plan(opts.replicas, listen, &opts.data)?;

    // One engine for every replica, its instance pool sized for all of them at once.
    let pool = opts.limits.max_concurrent.saturating_mul(plans.len());
    let (runtime, loaded) = Runtime::load_with(&opts.wasm, &opts.engine, &opts.limits, pool)?;
    let runtime = Arc::new(runtime);
    let size = std::fs::metadata(&opts.wasm)?.len();
    let how = match loaded {
        Loaded::Compiled(t) => format!("compiled in {t:.2?}"),
        Loaded::CompiledAndCached(t, path) => {
            format!("compiled in {t:.2?}, cached as {}", path.display())
        }
        Loaded::FromCache(t, path) => format!("loaded in {t:.2?} from {}", path.display()),
    };
    println!(
        "{} ({size} bytes) {}",
        opts.wasm.display(),
        style.dim(&format!("{how}; {:?} allocator", opts.engine.allocator).to_lowercase())
    );

    // The root here, each replica's dir by the replica itself (`create_data_dir`): one on a
    // volume that hangs must not hold the others' start.
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("creating data dir {}", opts.data.display()))?;
    // Bind everything before serving anything: a port in use fails the whole set at once.
    let mut listeners = Vec::new();
    for p in &plans {
        let listener = TcpListener::bind(p.listen)
            .await
            .with_context(|| format!("{}: binding {}", p.name, p.listen))?;
        listeners.push(listener);
    }
    let front_listener = if plans.len() > 1 {
        Some(
            TcpListener::bind(listen)
                .await
                .with_context(|| format!("front: binding {listen}"))?,
        )
    } else {
        None
    };

    let (stop_replicas, replicas_stopped) = watch::channel(());
    let mut state = State::default();
    let mut backends = Vec::new();
    let mut replica_tasks = Vec::new();
    for (p, listener) in plans.iter().zip(listeners) {
        let addr = listener.local_addr()?;
        let mut config = ServeConfig::new(&p.data_dir).named(&p.name);
        config.limits = opts.limits.clone();
        config.sync = opts.sync;
        config.create_data_dir = true;
        let mut stopped = replicas_stopped.clone();
        // Replicas share nothing but the compiled code: each starts on its own, in parallel.
        replica_tasks.push(tokio::spawn(runtime.clone().serve(
            listener,
            config,
            async move {
                let _ = stopped.changed().await;
            },
        )));
        println!(
            "  {}  {}  http://{addr}  {}",
            style.bold(&p.name),
            style.green("up"),
            style.dim(&format!(
                "visits in {}/ (its {DEFAULT_VISITS_DIR})",
                p.data_dir.display()
            ))
        );
        state.replicas.push(RunningReplica {
            name: p.name.clone(),
            url: format!("http://{addr}"),
            data_dir: p.data_dir.clone(),
        });
        backends.push(Backend {
            name: p.name.clone(),
            addr,
        });
    }

    let (stop_front, front_stopped) = watch::channel(());
    let front_task = match front_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let count = backends.len();
            let front = Arc::new(Front::new(backends, opts.balance));
            let mut stopped = front_stopped.clone();
            let conn = opts.limits.conn();
            state.front = Some(format!("http://{addr}"));
            println!(
                "{}  http://{addr}  {}",
                style.bold("front"),
                style.dim(&format!(
                    "{} over {count} replicas, like the LoadBalancer Service",
                    opts.balance
                        .to_possible_value()
                        .expect("no variant is skipped")
                        .get_name()
                ))
            );
            Some(tokio::spawn(async move {
                server::serve(front, listener, &conn, async move {
                    let _ = stopped.changed().await;
                })
                .await
            }))
        }
        None => None,
    };
    state.save(&opts.data)?;
    println!(
        "{}",
        style.dim("Ctrl-C or SIGTERM stops every replica once its in-flight requests finish; `app-wasm show` prints their visits")
    );

    shutdown.await;
    println!("stopping: draining in-flight requests");
    // The front first: requests it has in flight still need their replicas.
    let _ = stop_front.send(());
    if let Some(task) = front_task {
        task.await??;
    }
    let _ = stop_replicas.send(());
    for task in replica_tasks {
        task.await??;
    }
    let _ = std::fs::remove_file(State::path(&opts.data));
    println!(
        "stopped; {} replica(s) drained, visits kept in {}/",
        plans.len(),
        opts.data.display()
    );
    Ok(())
}
