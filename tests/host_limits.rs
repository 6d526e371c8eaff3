//! The host's limits, each against the real host over raw TCP or HTTP: a runaway request is
//! stopped at its deadline, a greedy one at its memory limit, a flood beyond the concurrency
//! limit gets 503 + Retry-After, and oversized or slow requests never reach the component.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use app_wasm_host::{Limits, RunningServer, Runtime, ServeConfig};
use support::{client, hello_component};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn hello_host(limits: Limits) -> RunningServer {
    let runtime = Arc::new(Runtime::load(hello_component()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path());
    config.limits = limits;
    RunningServer::start(runtime, "127.0.0.1:0", config)
        .await
        .unwrap()
}

/// Writes `request` on a fresh connection and returns all the server sends until it closes
/// (or 5 s pass).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_request_is_stopped_at_its_deadline_and_the_host_serves_on() {
    let host = hello_host(Limits {
        request_timeout_secs: 2,
        ..Limits::default()
    })
    .await;
    let http = client();
    let started = Instant::now();
    let runaways: Vec<_> = (0..2)
        .map(|_| tokio::spawn(http.get(host.url("/spin")).send()))
        .collect();
    // Two runaways on a two-thread runtime: they yield every tick, so others are served long
    // before the runaways' deadline (not after it, as a guest that never yields would force).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let meanwhile = Instant::now();
    assert_eq!(http.get(host.url("/")).send().await.unwrap().status(), 200);
    let meanwhile = meanwhile.elapsed();
    println!("GET / beside two runaways took {meanwhile:?}");
    assert!(meanwhile < Duration::from_millis(500), "{meanwhile:?}");
    let mut resp = None;
    for r in runaways {
        resp = Some(r.await.unwrap().unwrap());
    }
    let resp = resp.unwrap();
    let took = started.elapsed();
    println!("/spin stopped after {took:?} (deadline 2 s)");
    assert_eq!(resp.status(), 500);
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(http.get(host.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_grows_without_end_hits_its_memory_limit() {
    let host = hello_host(Limits {
        memory_mib: 16,
        ..Limits::default()
    })
    .await;
    let http = client();
    let started = Instant::now();
    let resp = http.get(host.url("/grow")).send().await.unwrap();
    println!("/grow stopped after {:?} (limit 16 MiB)", started.elapsed());
    assert_eq!(resp.status(), 500);
    assert_eq!(http.get(host.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_concurrent_requests_the_host_answers_503_with_retry_after() {
    let host = hello_host(Limits {
        max_concurrent: 2,
        request_timeout_secs: 2,
        ..Limits::default()
    })
    .await;
    let http = client();
    // Two runaways hold both permits until their deadline.
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(http.get(host.url("/spin")).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = http.get(host.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let message =
        support::contract::assert_error(resp, reqwest::StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("busy"), "{message}");
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), 500);
    }
    assert_eq!(http.get(host.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_bodies_and_slow_clients_never_reach_the_component() {
    let host = hello_host(Limits {
        head_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(status_of(&raw(host.addr, big_header.as_bytes()).await), 431);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
    let status = status_of(&raw(host.addr, long_uri.as_bytes()).await);
    assert!([414, 431].contains(&status), "{status}");
    let big_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
    let resp = raw(host.addr, big_body).await;
    assert_eq!(status_of(&resp), 413, "{resp}");
    assert!(resp.contains("no route takes a body"), "{resp}");

    // A slow client: half a head, then nothing. The connection is closed after the head
    // timeout, with 408 or without a word, and never holds the server.
    let started = Instant::now();
    let resp = raw(host.addr, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    let took = started.elapsed();
    assert!(resp.is_empty() || status_of(&resp) == 408, "{resp}");
    assert!(
        took < Duration::from_secs(4),
        "slow client held for {took:?}"
    );
    assert_eq!(
        client().get(host.url("/")).send().await.unwrap().status(),
        200
    );
}
