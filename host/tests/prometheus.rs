//! Prometheus for real: Debian's `prometheus` scrapes `app-wasm up --replicas 3` (the runner
//! binary) and its HTTP API must show each replica's visits and requests as they were sent;
//! `promtool check metrics` lints what every replica serves at `/metrics`.

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use runner::Runner;
use serde_json::Value;
use support::{client, free_port, promtool_check, ChildServer};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A Prometheus scraping every replica each second, each target labelled with its replica.
fn start_prometheus(dir: &Path, replicas: &[(String, String)]) -> ChildServer {
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: app-wasm\n    static_configs:\n",
    );
    for (name, url) in replicas {
        let target = url.trim_start_matches("http://");
        config += &format!("      - targets: ['{target}']\n        labels: {{replica: {name}}}\n");
    }
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let port = free_port();
    let mut cmd = Command::new(PROMETHEUS);
    cmd.arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
    ChildServer::spawn(cmd, port)
}

/// The result of an instant query, as replica -> value.
async fn query(prometheus: &str, promql: &str) -> BTreeMap<String, f64> {
    let url = format!("{prometheus}/api/v1/query");
    let resp = client()
        .get(url)
        .query(&[("query", promql)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "query {promql}");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["status"], "success", "{promql}: {doc}");
    doc["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            let replica = series["metric"]["replica"]
                .as_str()
                .unwrap_or("-")
                .to_owned();
            let value = series["value"][1].as_str().unwrap().parse().unwrap();
            (replica, value)
        })
        .collect()
}

/// Queries `promql` until it gives `want`, or fails at the deadline with what it gave last.
async fn wait_for(prometheus: &str, promql: &str, want: &BTreeMap<String, f64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = query(prometheus, promql).await;
        if &got == want {
            println!("{promql}\n  = {got:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{promql}: want {want:?}, Prometheus says {got:?}"
        );
        // Waiting for the next scrape (every second) of a server outside this test.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn per_replica(values: [f64; 3]) -> BTreeMap<String, f64> {
    (0..3)
        .map(|i| (format!("app-wasm-{i}"), values[i]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_prometheus,
    ignore = "needs Debian's Prometheus: apt-get install prometheus (/usr/bin/prometheus, promtool)"
)]
async fn prometheus_scrapes_every_replica_and_sees_the_visits_and_requests_sent() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::start(&dir.path().join("data"), &["--replicas", "3"]);
    let http = client();
    // app-wasm-i gets 2(i+1) visits, a probe each, and app-wasm-0 one request no route has.
    for (i, (_, url)) in runner.replicas.iter().enumerate() {
        for _ in 0..2 * (i + 1) {
            let resp = http.get(format!("{url}/")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
        }
        let resp = http.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let url = &runner.replicas[0].1;
    let resp = http
        .get(format!("{url}/no-such-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Every replica's exposition, the component's visit metrics and the runner's request
    // metrics together, is what promtool accepts without a lint.
    for (name, url) in &runner.replicas {
        let text = http.get(format!("{url}/metrics")).send().await.unwrap();
        let text = text.text().await.unwrap();
        let (ok, said) = promtool_check(&text);
        assert!(ok, "promtool check metrics on {name}: {said}\n{text}");
        assert_eq!(said.trim(), "", "promtool lints on {name}'s /metrics");
        println!("promtool check metrics < {name}/metrics: ok, no lint");
    }

    let prometheus = start_prometheus(dir.path(), &runner.replicas);
    let api = &prometheus.base;
    wait_for(api, "up{job=\"app-wasm\"}", &per_replica([1.0; 3])).await;
    let visits = per_replica([2.0, 4.0, 6.0]);
    wait_for(api, "app_wasm_visits_total", &visits).await;
    let home_ok = "app_wasm_http_requests_total{route=\"/\",status=\"200\"}";
    wait_for(api, home_ok, &visits).await;
    let home_latency = "app_wasm_http_request_duration_seconds_count{route=\"/\"}";
    wait_for(api, home_latency, &visits).await;
    let probes = "app_wasm_http_requests_total{route=\"/readyz\",status=\"200\"}";
    wait_for(api, probes, &per_replica([1.0; 3])).await;
    let other = "app_wasm_http_requests_total{route=\"other\"}";
    let only_first: BTreeMap<String, f64> = [("app-wasm-0".to_owned(), 1.0)].into();
    wait_for(api, other, &only_first).await;
    wait_for(
        api,
        "app_wasm_visits_sync_info{mode=\"data\"}",
        &per_replica([1.0; 3]),
    )
    .await;
    // A quantile from the histogram's buckets: a real visit, so above zero, and under the
    // deadline's bucket.
    let p99 = "histogram_quantile(0.99, sum by (replica, le) \
               (app_wasm_http_request_duration_seconds_bucket{route=\"/\"}))";
    let quantiles = query(api, p99).await;
    println!("{p99}\n  = {quantiles:?}");
    assert_eq!(quantiles.len(), 3, "{quantiles:?}");
    assert!(
        quantiles.values().all(|&s| s > 0.0 && s <= 1.0),
        "{quantiles:?}"
    );
}
