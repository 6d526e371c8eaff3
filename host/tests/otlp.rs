//! OpenTelemetry for real: `app-wasm up --replicas 2` (the runner binary) with the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver on loopback, which decodes
//! every export with the official `opentelemetry-proto` definitions. After a SIGTERM (which
//! flushes) the receiver must hold one server span per request, with its route, method,
//! status and replica, and the service name; `OTEL_SDK_DISABLED` or `OTEL_TRACES_EXPORTER=none`
//! send nothing.

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use runner::{runner_bin, Runner};
use support::client;
use support::otlp::{start_receiver, SERVER_SPAN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_exports_a_server_span_per_request_with_route_and_status() {
    let receiver = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(runner_bin());
    cmd.arg("up")
        .arg("--quiet")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_SERVICE_NAME")
        .stderr(std::process::Stdio::inherit());
    let runner = Runner::spawn(cmd, dir.path(), &["--replicas", "2"]);
    let http = client();
    let mut sent = Vec::new();
    for (name, url) in &runner.replicas {
        for (path, status) in [("/", 200), ("/healthz", 200), ("/no-such-page", 404)] {
            let resp = http.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(resp.status(), status, "{name}{path}");
            sent.push((name.clone(), path, status));
        }
    }
    // SIGTERM: the runner drains, then flushes its spans before it exits.
    let out = runner.terminate();
    assert!(out.status.success(), "{out:?}");

    let spans = receiver.spans.lock().unwrap().clone();
    let posts = receiver.posts.lock().unwrap().clone();
    println!("OTLP receiver: {} POSTs {posts:?}", posts.len());
    assert!(posts
        .iter()
        .all(|p| p.starts_with("POST /v1/traces") && p.contains("application/x-protobuf")));
    for span in &spans {
        println!(
            "  span {:?} kind={} service={} error={} {:?}",
            span.name, span.kind, span.service, span.error, span.attributes
        );
    }
    assert_eq!(spans.len(), sent.len(), "one span per request: {spans:#?}");
    for (replica, path, status) in sent {
        // A path no route has: no http.route, and the method alone as the name.
        let route = (path != "/no-such-page").then_some(path);
        let name = route.map_or("GET".to_owned(), |r| format!("GET {r}"));
        let found = spans.iter().any(|s| {
            let a = |k: &str| s.attributes.get(k).map(String::as_str);
            s.name == name
                && s.kind == SERVER_SPAN
                && s.service == "app-wasm"
                && a("http.route") == route
                && a("url.path") == Some(path)
                && a("http.request.method") == Some("GET")
                && a("http.response.status_code") == Some(status.to_string().as_str())
                && a("app_wasm.replica") == Some(replica.as_str())
                && !s.error
        });
        assert!(found, "no span for {replica} GET {path} -> {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_off_switches_win_over_the_endpoint() {
    let receiver = start_receiver().await;
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(runner_bin());
        cmd.arg("up")
            .arg("--quiet")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
            .env(off.0, off.1)
            .stderr(std::process::Stdio::inherit());
        let runner = Runner::spawn(cmd, dir.path(), &[]);
        let resp = client()
            .get(format!("{}/", runner.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(runner.terminate().status.success());
        assert_eq!(
            receiver.posts.lock().unwrap().len(),
            0,
            "{off:?}: nothing exported"
        );
    }
}
