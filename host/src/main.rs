//! `app-wasm`: runs the app-wasm component locally on wasmtime, no Spin needed: one replica,
//! or a StatefulSet's worth behind a load-balancing front, and `show` for their visits.

use std::path::PathBuf;

use anyhow::Result;
use app_wasm::durability::SyncMode;
use app_wasm_host::engine::EngineOptions;
use app_wasm_host::front::Balance;
use app_wasm_host::telemetry;
use app_wasm_host::term::Style;
use app_wasm_host::up::{up, UpOptions};
use app_wasm_host::{show, Limits};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the component: N replicas app-wasm-0..N-1, each recording visits in its own
    /// DATA/app-wasm-<i>/ (seen by the component as /data), behind a front when N > 1.
    Up {
        /// Where clients connect: the replica itself, or the front when --replicas > 1
        /// (replicas then take the next ports: 8081, 8082, ...; port 0 picks free ports).
        #[arg(long, default_value = "127.0.0.1:8080", env = "APP_WASM_LISTEN")]
        listen: String,
        /// How many replicas, like the StatefulSet's `replicas`.
        #[arg(long, default_value_t = 1, env = "APP_WASM_REPLICAS")]
        replicas: usize,
        /// How the front spreads requests over the replicas.
        #[arg(long, value_enum, default_value_t = Balance::RoundRobin)]
        balance: Balance,
        /// Data root: one directory per replica, created if missing.
        #[arg(long, default_value = "data", env = "APP_WASM_DATA")]
        data: PathBuf,
        /// The compiled component.
        #[arg(
            long,
            default_value = "target/wasm32-wasip2/release/app_wasm.wasm",
            env = "APP_WASM_COMPONENT"
        )]
        wasm: PathBuf,
        /// What a 200 from `GET /` waits for: `data` syncs the visit to stable storage first
        /// (fdatasync), so it survives a power cut; `none` only writes it, so it survives a
        /// crash of the process, not of the machine. /metrics shows which is in force.
        #[arg(long, default_value_t = SyncMode::default(), env = "APP_WASM_SYNC",
              value_parser = parse_sync)]
        sync: SyncMode,
        /// Log only warnings and errors, not a line per request (RUST_LOG, when set, decides
        /// instead: e.g. RUST_LOG=app_wasm_host=debug).
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        engine: EngineOptions,
    },
    /// Time per-request instantiation inside the host (for bench/run): JSON on stdout.
    #[command(hide = true)]
    BenchInstantiate {
        #[arg(long, default_value = "target/wasm32-wasip2/release/app_wasm.wasm")]
        wasm: PathBuf,
        #[arg(short = 'n', default_value_t = 5000)]
        n: usize,
        #[command(flatten)]
        engine: EngineOptions,
    },
    /// Print every replica's visit count and latest visits: over HTTP for running replicas,
    /// from their data dirs for stopped ones.
    Show {
        /// Data root given to `up`.
        #[arg(long, default_value = "data", env = "APP_WASM_DATA")]
        data: PathBuf,
        /// How many of the latest visits to print per replica.
        #[arg(short = 't', long, default_value_t = 5)]
        tail: u64,
        /// One JSON document for scripts instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    let command = Cli::parse().command;
    // Logs, and spans if OTEL_* asks: set up outside the async runtime (the OTLP client has
    // threads of its own) and flushed after it, when the last request is answered.
    let telemetry = match &command {
        Command::Up { quiet, .. } => Some(telemetry::init(if *quiet { "warn" } else { "info" })?),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(run(command));
    // Dropping a runtime waits for every blocking thread; one stuck in a system call (a hung
    // volume) must not keep the process from exiting after its drain.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    drop(telemetry);
    result
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Up {
            listen,
            replicas,
            balance,
            data,
            wasm,
            sync,
            quiet: _,
            limits,
            engine,
        } => {
            let opts = UpOptions {
                wasm,
                listen,
                data,
                replicas,
                balance,
                sync,
                limits,
                engine,
            };
            up(opts, shutdown_signal()).await
        }
        Command::BenchInstantiate { wasm, n, engine } => {
            let report = app_wasm_host::bench_timing::instantiation_report(&wasm, &engine, n);
            println!("{}", report.await?);
            Ok(())
        }
        Command::Show { data, tail, json } => {
            let reports = show::collect(&data, tail).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "replicas": reports }))?
                );
            } else if reports.is_empty() {
                eprintln!(
                    "no replicas under {}/ (start some with `app-wasm up --replicas 3`)",
                    data.display()
                );
                std::process::exit(1);
            } else {
                print!("{}", show::render(&reports, &Style::for_stdout()));
            }
            Ok(())
        }
    }
}

fn parse_sync(value: &str) -> Result<SyncMode, String> {
    SyncMode::parse(Some(value)).map_err(|e| e.to_string())
}

/// Ctrl-C or SIGTERM (what kubelet and most supervisors send).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
