//! Real full and read-only volumes: a tmpfs mounted with a tiny size, or remounted read-only.
//! Needs root (CI runs as root); elsewhere the tests skip with a message.

mod support;

use reqwest::StatusCode;
use support::contract::assert_error;
use support::{client, read_records, start_host, visit_count, visit_until_refused, Tmpfs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_volume_is_507_loses_nothing_and_recovers_with_more_space() {
    let Some(volume) = Tmpfs::mount("16k") else {
        return;
    };
    let log = volume.path().join("visits.txt");
    let server = start_host(volume.path()).await;
    let http = client();

    // Visit until the volume is full; every 200 must be on disk.
    let base = format!("http://{}", server.addr);
    let (acknowledged, full_message) =
        visit_until_refused(&base, 2000, StatusCode::INSUFFICIENT_STORAGE).await;
    assert!(full_message.contains("full"), "{full_message}");
    // More visits while full: all 507, and the log stays whole (the torn tail is cut).
    for _ in 0..20 {
        let resp = http.get(server.url("/")).send().await.unwrap();
        assert_error(resp, StatusCode::INSUFFICIENT_STORAGE).await;
    }
    assert_eq!(
        read_records(&log),
        acknowledged,
        "every acknowledged visit, nothing else"
    );
    let resp = http.get(server.url("/readyz")).send().await.unwrap();
    let reason = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(reason.contains("full"), "{reason}");
    assert_eq!(visit_count(&base).await, acknowledged.len() as u64);
    println!(
        "full 16k tmpfs: {} visits acknowledged and on disk, then 507 x 21, readyz 503",
        acknowledged.len()
    );

    volume.remount("size=64k");
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for _ in 0..10 {
        assert_eq!(
            http.get(server.url("/")).send().await.unwrap().status(),
            200
        );
    }
    let records = read_records(&log);
    assert_eq!(records.len(), acknowledged.len() + 10);
    assert_eq!(records[..acknowledged.len()], acknowledged[..]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_volume_is_503_keeps_its_visits_and_recovers() {
    let Some(volume) = Tmpfs::mount("1m") else {
        return;
    };
    let log = volume.path().join("visits.txt");
    let server = start_host(volume.path()).await;
    let base = format!("http://{}", server.addr);
    let http = client();
    for _ in 0..3 {
        assert_eq!(
            http.get(server.url("/")).send().await.unwrap().status(),
            200
        );
    }
    let before = std::fs::read(&log).unwrap();

    volume.remount("ro");
    let resp = http.get(server.url("/")).send().await.unwrap();
    let message = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("read-only"), "{message}");
    let resp = http.get(server.url("/readyz")).send().await.unwrap();
    let reason = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(reason.contains("read-only"), "{reason}");
    // Reading still works: the visits are there and served.
    assert_eq!(visit_count(&base).await, 3);
    assert_eq!(std::fs::read(&log).unwrap(), before);

    volume.remount("rw");
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(server.url("/")).send().await.unwrap().status(),
        200
    );
    assert_eq!(read_records(&log).len(), 4);
    server.stop().await.unwrap();
}
