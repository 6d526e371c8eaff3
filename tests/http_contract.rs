//! The HTTP contract, on the compiled component served by our wasmtime host over loopback.

mod support;

use support::contract::{check_contract, Volume};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_serves_the_whole_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_host(dir.path()).await;
    check_contract(&format!("http://{}", server.addr), Volume::Dir(dir.path())).await;
    server.stop().await.unwrap();
}
