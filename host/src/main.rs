//! `app-wasm`: runs the app-wasm component locally on wasmtime, no Spin needed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use app_wasm_host::{Runtime, ServeConfig, GUEST_DATA_DIR};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the component over HTTP, recording visits in DATA (seen by the component as /data).
    Up {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "APP_WASM_LISTEN")]
        listen: String,
        /// Host directory for visits.txt; created if missing.
        #[arg(long, default_value = "data", env = "APP_WASM_DATA")]
        data: PathBuf,
        /// The compiled component.
        #[arg(
            long,
            default_value = "target/wasm32-wasip2/release/app_wasm.wasm",
            env = "APP_WASM_COMPONENT"
        )]
        wasm: PathBuf,
        /// Do not print a line per request.
        #[arg(long)]
        quiet: bool,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Up {
            listen,
            data,
            wasm,
            quiet,
        } => up(listen, data, wasm, quiet).await,
    }
}

async fn up(listen: String, data: PathBuf, wasm: PathBuf, quiet: bool) -> Result<()> {
    if !wasm.exists() {
        anyhow::bail!(
            "no component at {}: build it with `cargo build --release --target wasm32-wasip2`",
            wasm.display()
        );
    }
    std::fs::create_dir_all(&data)
        .with_context(|| format!("creating data dir {}", data.display()))?;
    let runtime = Arc::new(Runtime::load(&wasm)?);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let mut config = ServeConfig::new(&data);
    config.log_requests = !quiet;
    println!(
        "app-wasm serving {} on http://{} (visits in {} as {GUEST_DATA_DIR}); Ctrl-C stops",
        wasm.display(),
        listener.local_addr()?,
        data.display()
    );
    runtime.serve(listener, config, shutdown_signal()).await?;
    println!("stopped; in-flight requests finished");
    Ok(())
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
