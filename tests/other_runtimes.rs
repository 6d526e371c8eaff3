//! The same .wasm, unchanged, under runtimes we did not write: `wasmtime serve` 48.0.8 and the
//! Spin CLI 3.6.3 (the Spin inside containerd-shim-spin v0.24.0). Each must pass the whole
//! HTTP contract with its data dir as `/data`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::contract::{check_contract, Volume};
use support::{component, free_port, repo_root, spin_cli, tool_or_skip, ChildServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_wasmtime,
    ignore = "needs wasmtime 48 on PATH: cargo install --locked wasmtime-cli --version 48.0.8"
)]
async fn wasmtime_serve_runs_the_same_component() {
    let wasmtime = PathBuf::from("wasmtime");
    if !tool_or_skip(
        &wasmtime,
        "cargo install --locked wasmtime-cli --version 48.0.8",
    ) {
        return;
    }
    let version = Command::new(&wasmtime).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with("wasmtime 48."),
        "want wasmtime 48.x, got {version}"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(&wasmtime);
    cmd.args([
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "-S",
        "cli",
        "--dir",
    ])
    .arg(format!("{}::/data", dir.path().display()))
    .arg(component());
    let server = ChildServer::spawn(cmd, port);
    check_contract(&server.base, Volume::Dir(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_spin,
    ignore = "needs the Spin CLI: ../shared/bin/spin beside the repo, or SPIN_BIN"
)]
async fn spin_up_runs_the_manifest_with_a_writable_data_dir() {
    let spin = spin_cli();
    if !tool_or_skip(
        &spin,
        "it ships in ../shared/bin beside the repo; or set SPIN_BIN",
    ) {
        return;
    }
    // An app dir laid out like the repo: the repo's own spin.toml, the built component at its
    // `source` path, and an empty `data/` as the volume.
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("spin.toml"), app.path().join("spin.toml")).unwrap();
    let wasm_dir = app.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&wasm_dir).unwrap();
    std::fs::copy(component(), wasm_dir.join("app_wasm.wasm")).unwrap();
    let data = app.path().join("data");
    std::fs::create_dir(&data).unwrap();

    let port = free_port();
    let mut cmd = Command::new(&spin);
    cmd.args([
        "up",
        "--direct-mounts",
        "--allow-transient-write",
        "--listen",
    ])
    .arg(format!("127.0.0.1:{port}"))
    .current_dir(app.path())
    .env("SPIN_DISABLE_TELEMETRY", "1");
    let server = ChildServer::spawn(cmd, port);
    let health = reqwest::get(format!("{}/.well-known/spin/health", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    check_contract(&server.base, Volume::Dir(&data)).await;
}
