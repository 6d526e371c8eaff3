//! Storage semantics of the compiled component under our host, on real files over real HTTP.

mod support;

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;
use support::contract::assert_error;
use support::{client, concurrent_visits, read_records, start_host, visit_count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_visits_are_each_recorded_exactly_once() {
    const VISITS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let server = start_host(dir.path()).await;
    let base = format!("http://{}", server.addr);
    let mut acknowledged = concurrent_visits(&base, VISITS).await;
    let mut on_disk = read_records(&dir.path().join("visits.txt"));
    assert_eq!(on_disk.len(), VISITS);
    // Same multiset: every acknowledged visit is on disk once, nothing else is.
    acknowledged.sort();
    on_disk.sort();
    assert_eq!(acknowledged, on_disk);
    assert_eq!(
        visit_count(&format!("http://{}", server.addr)).await,
        VISITS as u64
    );
    println!("1000 concurrent GET /: 1000 x 200, 1000 records on disk, /visits = 1000");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_visit_and_never_rewrites_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visits.txt");
    let server = start_host(dir.path()).await;
    for _ in 0..5 {
        client().get(server.url("/")).send().await.unwrap();
    }
    server.stop().await.unwrap();
    let before = std::fs::read(&log).unwrap();

    let server = start_host(dir.path()).await;
    let base = format!("http://{}", server.addr);
    assert_eq!(visit_count(&base).await, 5);
    client().get(server.url("/")).send().await.unwrap();
    assert_eq!(visit_count(&base).await, 6);
    let after = std::fs::read(&log).unwrap();
    assert!(
        after.starts_with(&before),
        "the old records must stay as they were"
    );
    assert_eq!(read_records(&log).len(), 6);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_never_counted_nor_merged_with_the_next_visit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visits.txt");
    let whole = "2026-11-27T08:00:00.00001+03:00\n2026-11-27T08:00:01.00002+03:00\n";
    // A crash or a full disk cut the third record after 19 bytes.
    std::fs::write(&log, format!("{whole}2026-11-27T08:00:02")).unwrap();
    let server = start_host(dir.path()).await;
    let base = format!("http://{}", server.addr);
    assert_eq!(visit_count(&base).await, 2);
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\napp_wasm_visits_torn_bytes 19\n"),
        "{metrics}"
    );
    let text = client()
        .get(server.url("/visits?format=text"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        text.text().await.unwrap(),
        whole,
        "the text form serves whole records only"
    );

    let resp = client().get(server.url("/")).send().await.unwrap();
    let shown: Value = resp.json().await.unwrap();
    let records = read_records(&log); // asserts whole, fixed-width, well-formed lines
    assert_eq!(records.len(), 3);
    assert_eq!(records[2], shown["moscow_time"].as_str().unwrap());
    assert!(std::fs::read_to_string(&log).unwrap().starts_with(whole));
    assert_eq!(visit_count(&base).await, 3);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_dir_is_a_clear_503_until_it_appears() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("volume");
    let server = start_host(&dir).await;
    let http = client();
    let message = assert_error(
        http.get(server.url("/")).send().await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(message.contains("missing"), "{message}");
    let resp = http.get(server.url("/readyz")).send().await.unwrap();
    let message = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        message.starts_with("not ready: data directory is missing"),
        "{message}"
    );
    let resp = http.get(server.url("/visits")).send().await.unwrap();
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    std::fs::create_dir(&dir).unwrap();
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
    assert_eq!(read_records(&dir.join("visits.txt")).len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_root_records_a_visit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_host(dir.path()).await;
    let http = client();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for path in [
        "/visits",
        "/healthz",
        "/readyz",
        "/metrics",
        "/x",
        "/visits?format=text",
    ] {
        for _ in 0..3 {
            let status = http.get(server.url(path)).send().await.unwrap().status();
            *statuses.entry(status.as_u16()).or_default() += 1;
        }
    }
    assert_eq!(statuses[&200], 15);
    assert_eq!(statuses[&404], 3);
    assert!(read_records(&dir.path().join("visits.txt")).is_empty());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_from_an_earlier_version_is_kept_and_continued_in_32_byte_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visits.txt");
    // Two 33-byte records with microseconds, as versions before the 32-byte format wrote.
    let legacy = "2026-11-27T08:00:00.000001+03:00\n2026-11-27T08:00:01.999999+03:00\n";
    std::fs::write(&log, legacy).unwrap();
    let server = start_host(dir.path()).await;
    let base = format!("http://{}", server.addr);
    assert_eq!(visit_count(&base).await, 2, "read as it is");
    let shown: Value = client()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = read_records(&log);
    assert_eq!(
        records,
        [
            "2026-11-27T08:00:00.00000+03:00",
            "2026-11-27T08:00:01.99999+03:00",
            shown["moscow_time"].as_str().unwrap()
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("visits.txt.v1")).unwrap(),
        legacy,
        "the original is kept byte for byte"
    );
    assert_eq!(visit_count(&base).await, 3);
    server.stop().await.unwrap();
}
