//! The StatefulSet on a laptop: `app-wasm up --replicas 3` (the real runner binary) with its
//! front, per-replica data dirs and `app-wasm show`, checked against what is on disk.

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use runner::{show, signal, Runner};
use serde_json::Value;
use support::{client, read_records, visit_count};

const REPLICAS: usize = 3;
const VISITS: usize = 300;

/// `VISITS` visits through the front, 10 at a time: (replica named in X-Replica, the
/// replica named in the JSON body, acknowledged timestamp) for each.
async fn visit_through_front(base: &str) -> Vec<(String, String)> {
    let http = client();
    let mut seen = Vec::new();
    for _ in 0..VISITS / 10 {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                let (http, url) = (http.clone(), format!("{base}/"));
                tokio::spawn(async move {
                    let resp = http.get(url).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let header = resp.headers()["x-replica"].to_str().unwrap().to_owned();
                    let body: Value = resp.json().await.unwrap();
                    assert_eq!(body["replica"], header.as_str(), "header and body agree");
                    (header, body["moscow_time"].as_str().unwrap().to_owned())
                })
            })
            .collect();
        for task in batch {
            seen.push(task.await.unwrap());
        }
    }
    seen
}

fn show_json(runner_data: &std::path::Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&show(runner_data, &["--json", "-t", "3"])).unwrap();
    doc["replicas"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_the_front_keep_their_own_visits_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let runner = Runner::start(data.path(), &["--replicas", "3"]);
    assert_eq!(runner.replicas.len(), REPLICAS);

    let seen = visit_through_front(&runner.base).await;
    let mut by_replica: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (replica, ts) in seen {
        by_replica.entry(replica).or_default().push(ts);
    }
    // Round-robin: every replica got an equal share, and the shares add up.
    let counts: Vec<usize> = by_replica.values().map(Vec::len).collect();
    println!(
        "visits per replica through the front: {by_replica_counts:?}",
        by_replica_counts = by_replica
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(counts, [VISITS / REPLICAS; REPLICAS]);
    assert_eq!(counts.iter().sum::<usize>(), VISITS);

    // Each replica's file holds exactly the visits it acknowledged: its own, nobody else's.
    for (i, (name, url)) in runner.replicas.iter().enumerate() {
        assert_eq!(name, &format!("app-wasm-{i}"));
        let mut on_disk = read_records(&data.path().join(name).join("visits.txt"));
        let mut acknowledged = by_replica[name].clone();
        on_disk.sort();
        acknowledged.sort();
        assert_eq!(on_disk, acknowledged, "{name}'s volume");
        assert_eq!(visit_count(url).await, 100);
    }

    // `show` (running replicas, over HTTP) reports the same numbers and latest visits.
    let reports = show_json(data.path());
    assert_eq!(reports.len(), REPLICAS);
    for (i, r) in reports.iter().enumerate() {
        let name = format!("app-wasm-{i}");
        assert_eq!(r["name"], name.as_str());
        assert_eq!(r["state"], "running");
        assert_eq!(r["visits"], 100);
        let records = read_records(&data.path().join(&name).join("visits.txt"));
        assert_eq!(r["tail"], serde_json::json!(records[97..]));
    }
    let text = show(data.path(), &["-t", "2"]);
    for i in 0..REPLICAS {
        assert!(
            text.contains(&format!(
                "app-wasm-{i}: 100 visits  (running at http://127.0.0.1:"
            )),
            "{text}"
        );
    }
    assert!(
        text.ends_with("3 replicas, 300 visits in total\n"),
        "{text}"
    );
    println!("app-wasm show -t 2, running:\n{text}");

    // SIGTERM stops every replica cleanly; `show` then reads the data dirs.
    let out = runner.terminate();
    assert!(out.status.success(), "exit {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped; 3 replica(s) drained"), "{stdout}");
    assert!(!data.path().join("replicas.json").exists());
    for r in show_json(data.path()) {
        assert_eq!(
            (r["state"].as_str(), r["visits"].as_u64()),
            (Some("stopped"), Some(100))
        );
    }

    // Restart on the same data: the numbers survive, and new visits append.
    let runner = Runner::start(data.path(), &["--replicas", "3"]);
    for (_, url) in &runner.replicas {
        assert_eq!(visit_count(url).await, 100, "visits survive a restart");
    }
    let resp = client()
        .get(format!("{}/", runner.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-replica"],
        "app-wasm-0",
        "round-robin starts at 0"
    );
    let totals: Vec<u64> = show_json(data.path())
        .iter()
        .map(|r| r["visits"].as_u64().unwrap())
        .collect();
    assert_eq!(totals, [101, 100, 100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_lets_in_flight_visits_finish_whole() {
    let data = tempfile::tempdir().unwrap();
    let runner = Runner::start(data.path(), &["--replicas", "2"]);
    // 64 clients visiting in a loop; SIGTERM lands while they are mid-request.
    let load = tokio::spawn(support::visit_until_gone(runner.base.clone(), 64, 50));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    signal(runner.pid(), "TERM");
    let mut acknowledged = load.await.unwrap();
    let out = runner.terminate();
    assert!(out.status.success(), "exit {}", out.status);
    // Every acknowledged visit is on disk, whole, and nothing else is.
    let mut on_disk: Vec<String> = (0..2)
        .flat_map(|i| read_records(&data.path().join(format!("app-wasm-{i}/visits.txt"))))
        .collect();
    on_disk.sort();
    acknowledged.sort();
    println!(
        "{} visits acknowledged before and during the drain, all on disk",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty());
    assert_eq!(on_disk, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_skips_a_replica_that_is_gone_for_requests_it_can_resend() {
    use app_wasm_host::front::Backend;

    let data = tempfile::tempdir().unwrap();
    let live = support::start_host(data.path()).await;
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let backends = vec![
        Backend {
            name: "app-wasm-0".into(),
            addr: gone,
        },
        Backend {
            name: "app-wasm-1".into(),
            addr: live.addr,
        },
    ];
    let base = format!("http://{}", support::serve_front(backends).await);
    let http = client();
    for _ in 0..10 {
        let resp = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "a GET is resent to the live replica");
    }
    assert_eq!(visit_count(&live.url("")).await, 10);
    // A request with a body cannot be resent: the dead replica's turn is a 502, the live
    // replica's a 405 from the component; neither records anything.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let resp = http
            .post(format!("{base}/"))
            .body("x=1")
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [405, 502]);
    assert_eq!(visit_count(&live.url("")).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_compiled_code_from_the_cache_instead_of_compiling() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let first = Runner::start(data.path(), &args).terminate();
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.contains("compiled in") && first.contains("cached as"),
        "{first}"
    );
    let cached: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(cached.len(), 1, "one compiled artifact: {cached:?}");

    let runner = Runner::start(data.path(), &args);
    assert_eq!(
        visit_count(&runner.base).await,
        0,
        "serves from the cached code"
    );
    let second = String::from_utf8_lossy(&runner.terminate().stdout).into_owned();
    assert!(
        second.contains("loaded in") && second.contains(".cwasm"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_replicas_share_one_capped_instance_pool() {
    // 20 x 1,024 pool slots would not fit the address space; the pool is capped at 4,096.
    let data = tempfile::tempdir().unwrap();
    let runner = Runner::start(data.path(), &["--replicas", "20"]);
    assert_eq!(runner.replicas.len(), 20);
    let http = client();
    let mut seen = BTreeMap::new();
    for _ in 0..40 {
        let resp = http.get(format!("{}/", runner.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let name = resp.headers()["x-replica"].to_str().unwrap().to_owned();
        *seen.entry(name).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");
}

/// One raw request; the whole response as text.
async fn raw(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_structured_log_line_and_host_errors_name_the_replica() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("runner.log");
    let runner = Runner::start_logged(data.path(), &[], &log, None);
    let base = runner.base.clone();
    let status = |path: &str| {
        let url = format!("{base}{path}");
        async move { client().get(url).send().await.unwrap().status() }
    };
    assert_eq!(status("/").await, 200);
    assert_eq!(status("/nope").await, 404);
    // Refused by the host before the component runs: still names the replica.
    let refused = raw(
        &base,
        "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("x-replica: app-wasm-0\r\n"), "{refused}");
    runner.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    let requests: Vec<&str> = text.lines().filter(|l| l.contains(" method=")).collect();
    assert_eq!(requests.len(), 3, "one line per request:\n{text}");
    for (line, target, status) in [(0, "/", 200), (1, "/nope", 404), (2, "/", 400)] {
        let want = format!("replica=\"app-wasm-0\" method=GET target={target} status={status} ");
        assert!(requests[line].contains(" INFO "), "{}", requests[line]);
        assert!(
            requests[line].contains(&want),
            "{want:?} not in {}",
            requests[line]
        );
    }

    // RUST_LOG filters: at warn, no request lines at all.
    let quiet_log = data.path().join("quiet.log");
    let runner = Runner::start_logged(data.path(), &[], &quiet_log, Some("warn"));
    assert_eq!(
        client()
            .get(format!("{}/", runner.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    runner.terminate();
    let text = std::fs::read_to_string(&quiet_log).unwrap();
    assert!(
        !text.contains(" method="),
        "RUST_LOG=warn still logged requests:\n{text}"
    );
}
