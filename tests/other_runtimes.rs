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
    let (app, server) = spin_up_the_repo_app(&spin);
    let data = app.path().join("data");
    let health = reqwest::get(format!("{}/.well-known/spin/health", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    check_contract(&server.base, Volume::Dir(&data)).await;
}

/// `spin up --direct-mounts --allow-transient-write` on an app dir laid out like the repo: the
/// repo's own spin.toml, the built component at its `source` path, and an empty `data/` as
/// the volume.
fn spin_up_the_repo_app(spin: &std::path::Path) -> (tempfile::TempDir, ChildServer) {
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("spin.toml"), app.path().join("spin.toml")).unwrap();
    let wasm_dir = app.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&wasm_dir).unwrap();
    std::fs::copy(component(), wasm_dir.join("app_wasm.wasm")).unwrap();
    std::fs::create_dir(app.path().join("data")).unwrap();

    let port = free_port();
    let mut cmd = Command::new(spin);
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
    (app, server)
}

/// What a pod's scrape gets is the component's own exposition (no runner around it):
/// `promtool check metrics` accepts it without a lint, after visits and with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(no_spin, no_promtool),
    ignore = "needs the Spin CLI (../shared/bin/spin or SPIN_BIN) and Debian's promtool \
              (apt-get install prometheus)"
)]
async fn the_components_own_metrics_pass_promtool_under_spin_up() {
    let (_app, server) = spin_up_the_repo_app(&spin_cli());
    let http = support::client();
    for visits in [0, 3] {
        for _ in 0..visits {
            let resp = http.get(format!("{}/", server.base)).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
        let text = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap();
        let text = text.text().await.unwrap();
        assert!(
            text.contains(&format!("\napp_wasm_visits_total {visits}\n")),
            "{text}"
        );
        let (ok, said) = support::promtool_check(&text);
        assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
    }
}
