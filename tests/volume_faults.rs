//! Real full and read-only volumes: a tmpfs mounted with a tiny size, or remounted read-only.
//! Needs root (CI runs as root); elsewhere the tests skip with a message.

mod support;

use reqwest::StatusCode;
use support::contract::assert_error;
use support::{client, read_records, start_host, visit_count, visit_until_refused, Tmpfs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not_root, ignore = "needs root: it mounts tmpfs volumes")]
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
#[cfg_attr(not_root, ignore = "needs root: it mounts tmpfs volumes")]
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

/// 64 clients visiting until each has sent `per_client` requests or seen a status outside
/// `until_not`: every (status, timestamp-if-200) seen.
async fn load(
    base: &str,
    per_client: usize,
) -> (Vec<String>, std::collections::BTreeMap<u16, usize>) {
    let http = client();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{base}/"));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..per_client {
                    let resp = http.get(&url).send().await.unwrap();
                    let status = resp.status().as_u16();
                    let body: serde_json::Value = resp.json().await.unwrap();
                    seen.push((status, body));
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                seen
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        for (status, body) in t.await.unwrap() {
            *statuses.entry(status).or_insert(0) += 1;
            if status == 200 {
                acknowledged.push(body["moscow_time"].as_str().unwrap().to_owned());
            } else {
                // Every refusal is a precise JSON error.
                assert_eq!(body["status"], status, "{body}");
            }
        }
    }
    (acknowledged, statuses)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not_root, ignore = "needs root: it mounts tmpfs volumes")]
async fn a_volume_filling_under_64_clients_loses_and_merges_nothing() {
    let Some(volume) = Tmpfs::mount("16k") else {
        return;
    };
    let log = volume.path().join("visits.txt");
    let server = start_host(volume.path()).await;
    let base = format!("http://{}", server.addr);

    // 64 x 20 = 1,280 attempts at a volume that holds fewer than 500 records.
    let (acknowledged, statuses) = load(&base, 20).await;
    println!("16k tmpfs filling under 64 clients: {statuses:?}");
    assert!(
        statuses.keys().all(|s| [200, 503, 507].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&507).copied().unwrap_or(0) > 0,
        "the volume never filled"
    );
    // Whole records only (read_records asserts it), and exactly the acknowledged ones.
    assert_eq!(sorted(read_records(&log)), sorted(acknowledged.clone()));

    volume.remount("size=64k");
    let (more, statuses) = load(&base, 2).await;
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "recovered: {statuses:?}"
    );
    let all = [acknowledged, more].concat();
    assert_eq!(sorted(read_records(&log)), sorted(all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not_root, ignore = "needs root: it mounts tmpfs volumes")]
async fn a_volume_turning_read_only_under_64_clients_is_503_then_recovers() {
    let Some(volume) = Tmpfs::mount("1m") else {
        return;
    };
    let log = volume.path().join("visits.txt");
    let server = start_host(volume.path()).await;
    let base = format!("http://{}", server.addr);
    let http = client();

    let loader = {
        let base = base.clone();
        // 64 x 400 visits: seconds of load, so the remount at 150 ms lands mid-run even on
        // a host that serves 16k visits/s (64 x 30 finished before it in CI).
        tokio::spawn(async move { load(&base, 400).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    volume.remount_under_load("ro");
    let resp = http.get(server.url("/readyz")).send().await.unwrap();
    let reason = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(reason.contains("read-only"), "{reason}");
    let (acknowledged, statuses) = loader.await.unwrap();
    println!("tmpfs remounted read-only under 64 clients: {statuses:?}");
    assert!(
        statuses.keys().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "no request saw the read-only volume"
    );
    assert_eq!(sorted(read_records(&log)), sorted(acknowledged.clone()));

    volume.remount("rw");
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (more, statuses) = load(&base, 2).await;
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "recovered: {statuses:?}"
    );
    assert_eq!(
        sorted(read_records(&log)),
        sorted([acknowledged, more].concat())
    );
}
