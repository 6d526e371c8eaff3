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
async fn a_log_in_another_format_is_refused_on_every_route_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visits.txt");
    // Two 33-byte records with microseconds, as pre-release builds wrote (CHANGELOG.md).
    let other = "2026-11-27T08:00:00.000001+03:00\n2026-11-27T08:00:01.999999+03:00\n";
    std::fs::write(&log, other).unwrap();
    let server = start_host(dir.path()).await;
    for path in ["/", "/visits", "/visits?format=text", "/metrics", "/readyz"] {
        let r = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("visit log is damaged") && body.contains("first bytes"),
            "{path}: {body}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        other,
        "kept byte for byte"
    );
    server.stop().await.unwrap();
}

/// The cases, over HTTP: zeros after three synced visits (a power cut that kept the
/// length) are not counted, the next visit goes where they were; junk inside the synced
/// records aborts the text form (no `Content-Length`, no final chunk) and `?tail=` is 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeros_a_cut_left_are_not_counted_and_junk_before_them_aborts_the_text_form() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visits.txt");
    let server = start_host(dir.path()).await;
    let base = format!("http://{}", server.addr);
    concurrent_visits(&base, 3).await;
    let synced = std::fs::read(&log).unwrap();
    let mut cut = synced.clone();
    cut.extend_from_slice(&[0; 64]);
    std::fs::write(&log, &cut).unwrap();
    assert_eq!(visit_count(&base).await, 3, "no phantom visit");
    let text = client()
        .get(server.url("/visits?format=text"))
        .send()
        .await
        .unwrap();
    assert!(text.headers().get("content-length").is_none());
    assert_eq!(text.bytes().await.unwrap(), synced);
    let ready = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the next visit can be recorded");
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
        records.len(),
        4,
        "cut back to the synced records, then the visit"
    );
    assert_eq!(records[3], shown["moscow_time"].as_str().unwrap());

    // Two record-sized slots of junk where the first two visits were.
    let mut damaged = std::fs::read(&log).unwrap();
    damaged[..64].copy_from_slice(&[b'#'; 64]);
    damaged[..32].copy_from_slice(&synced[..32]);
    std::fs::write(&log, &damaged).unwrap();
    // The head goes before the records are read, but the first chunk is already bad: hyper
    // may close the connection before it has flushed the head. Either way the client never
    // gets a body that looks complete.
    match client().get(server.url("/visits?format=text")).send().await {
        Ok(text) => {
            assert_eq!(text.status(), 200);
            assert!(text.headers().get("content-length").is_none());
            assert!(text.bytes().await.is_err(), "aborted, not ended short");
        }
        Err(e) => assert!(
            e.is_request() && !e.is_timeout(),
            "closed before the head: {e}"
        ),
    }
    let tail = client()
        .get(server.url("/visits?tail=4"))
        .send()
        .await
        .unwrap();
    let why = assert_error(tail, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        why.contains("damaged") && why.contains("offset 32"),
        "{why}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), damaged, "nothing was cut");
    server.stop().await.unwrap();
}

/// Junk among the synced records where no request reads (not the first record, not the
/// mark's last, not past the mark) is found by the scrub at start: every route that uses the
/// volume answers 503 naming the record, `GET /` records nothing, /healthz stays 200, and
/// once the log is repaired a restart serves it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_no_request_reads_is_found_at_start_and_every_volume_route_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visits.txt");
    let server = start_host(dir.path()).await;
    // One visit after another, so the synced mark ends at the last record: concurrent visits
    // may leave a smaller (true) mark, and junk right after a mark is what a cut can leave.
    for _ in 0..5 {
        let resp = client().get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    server.stop().await.unwrap();
    let sound = std::fs::read(&log).unwrap();
    let mut damaged = sound.clone();
    damaged[64..96].copy_from_slice(&[b'#'; 32]);
    std::fs::write(&log, &damaged).unwrap();

    let server = start_host(dir.path()).await;
    let http = client();
    for path in [
        "/",
        "/visits",
        "/visits?tail=1",
        "/visits?format=text",
        "/metrics",
        "/readyz",
    ] {
        let resp = http.get(server.url(path)).send().await.unwrap();
        let why = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(
            why.contains("visit log is damaged") && why.contains("record 2 at offset 64"),
            "{path}: {why}"
        );
        assert_eq!(path == "/readyz", why.starts_with("not ready: "), "{why}");
    }
    let head = http.head(server.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 503);
    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        std::fs::read(&log).unwrap(),
        damaged,
        "nothing cut or added"
    );
    server.stop().await.unwrap();

    std::fs::write(&log, &sound).unwrap();
    let server = start_host(dir.path()).await;
    let resp = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(read_records(&log).len(), 6);
    server.stop().await.unwrap();
}
