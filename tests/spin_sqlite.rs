//! The Kubernetes flavour (Spin SQLite store) under the real Spin CLI 3.6.3, the Spin inside
//! containerd-shim-spin v0.24.0: the image's own spin.toml and component, and the runtime
//! config from k8s/ with only the store's directory moved from /data to a test volume.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use app_wasm::sqlite_log::{KV_TABLE, STORE};
use reqwest::StatusCode;
use support::contract::{assert_error, check_contract, Volume};
use support::{client, concurrent_visits, free_port, image_dir, repo_root, spin_cli};
use support::{sqlite_records, tool_or_skip, visit_count};
use support::{ChildServer, StandInApiServer, Tmpfs};

/// The pod's mount path for the claim, as k8s/statefulset.yaml mounts it.
const POD_VOLUME: &str = "/data/";

/// `spin up` on the staged image contents, with the volume at `volume`. Killed when dropped.
struct SpinReplica {
    server: ChildServer,
    db: PathBuf,
    _app: tempfile::TempDir,
}

impl SpinReplica {
    fn start(volume: &Path) -> SpinReplica {
        let app = tempfile::tempdir().unwrap();
        for file in ["spin.toml", "app_wasm.wasm"] {
            std::fs::copy(image_dir().join(file), app.path().join(file)).unwrap();
        }
        let config = std::fs::read_to_string(repo_root().join("k8s/runtime-config.toml")).unwrap();
        assert!(
            config.contains(&format!("\"{POD_VOLUME}")),
            "store path must be on the volume"
        );
        let config = config.replace(
            &format!("\"{POD_VOLUME}"),
            &format!("\"{}/", volume.display()),
        );
        let config_path = app.path().join("runtime-config.toml");
        std::fs::write(&config_path, config).unwrap();

        let port = free_port();
        let mut cmd = Command::new(spin_cli());
        cmd.args([
            "up",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--runtime-config-file",
        ])
        .arg(&config_path)
        // As containerd-shim-spin runs it: component output to the console, not to log files
        // under the runtime config's state_dir (on the volume, which may turn read-only).
        .args(["--log-dir", ""])
        .current_dir(app.path())
        .env("SPIN_DISABLE_TELEMETRY", "1");
        SpinReplica {
            server: ChildServer::spawn(cmd, port),
            db: volume.join("visits.db"),
            _app: app,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }
}

fn have_spin() -> bool {
    tool_or_skip(
        &spin_cli(),
        "it ships in ../shared/bin beside the repo; or set SPIN_BIN",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_spin,
    ignore = "needs the Spin CLI: ../shared/bin/spin beside the repo, or SPIN_BIN"
)]
async fn sqlite_flavour_serves_the_whole_contract_under_spin() {
    if !have_spin() {
        return;
    }
    let volume = tempfile::tempdir().unwrap();
    let replica = SpinReplica::start(volume.path());
    check_contract(&replica.server.base, Volume::Sqlite(&replica.db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_spin,
    ignore = "needs the Spin CLI: ../shared/bin/spin beside the repo, or SPIN_BIN"
)]
async fn sqlite_flavour_counts_a_thousand_concurrent_visits_exactly_and_survives_restart() {
    const VISITS: usize = 1000;
    if !have_spin() {
        return;
    }
    let volume = tempfile::tempdir().unwrap();
    let replica = SpinReplica::start(volume.path());
    let http = client();
    let mut acknowledged = concurrent_visits(&replica.server.base, VISITS).await;
    let mut stored = sqlite_records(&replica.db);
    acknowledged.sort();
    stored.sort();
    assert_eq!(acknowledged, stored);
    assert_eq!(visit_count(&replica.server.base).await, VISITS as u64);
    println!("Spin SQLite flavour: 1000 concurrent GET / -> 1000 rows, /visits = 1000");

    // Kill Spin (no graceful stop) and start a new replica on the same volume.
    drop(replica);
    let replica = SpinReplica::start(volume.path());
    assert_eq!(
        visit_count(&replica.server.base).await,
        VISITS as u64,
        "visits survive a restart"
    );
    assert_eq!(
        http.get(replica.url("/")).send().await.unwrap().status(),
        200
    );
    assert_eq!(sqlite_records(&replica.db).len(), VISITS + 1);
    // Once a read has put the file in WAL mode, the key-value store's connection, open for the
    // app's life, keeps the WAL: the last SQL connection to close does not checkpoint and
    // delete it after every request (the design's point, docs/storage.md).
    assert!(
        volume.path().join("visits.db-wal").exists(),
        "the WAL was torn down between requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(no_spin, not_root),
    ignore = "needs the Spin CLI (../shared/bin/spin, or SPIN_BIN) and root (it mounts tmpfs)"
)]
async fn sqlite_flavour_on_a_full_volume_is_507_loses_nothing_and_recovers() {
    if !have_spin() {
        return;
    }
    // 2m: room for WAL's shared-memory file (32k) so that the data is what fills it, as on a
    // real claim (on a volume too small for that, SQLite reports a bare I/O error, 500).
    let Some(volume) = Tmpfs::mount("2m") else {
        return;
    };
    let replica = SpinReplica::start(volume.path());
    let http = client();
    // As in a pod: kubelet's readiness probe runs before the Service sends the first visit.
    assert_eq!(get(&http, &replica.url("/readyz")).await.status(), 200);
    // The key-value store's connection keeps the WAL, which grows by a visit's pages (two or
    // three of 4 KiB) until SQLite's checkpoint at 1,000 pages rewinds it: another file takes
    // all but 512 KiB of the volume, and the visits fill the rest in a few dozen.
    fill_all_but(&volume.path().join("filler"), 512 * 1024);
    // Readiness after every visit: it must turn 503 no earlier than the visit it predicts.
    let mut acknowledged = Vec::new();
    let refusal = loop {
        assert!(acknowledged.len() < 10_000, "the volume never filled");
        let resp = get(&http, &replica.url("/")).await;
        if resp.status() != 200 {
            break assert_error(resp, StatusCode::INSUFFICIENT_STORAGE).await;
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        acknowledged.push(body["moscow_time"].as_str().unwrap().to_owned());
        let probe = get(&http, &replica.url("/readyz")).await;
        if probe.status() != 200 {
            let reason = assert_error(probe, StatusCode::SERVICE_UNAVAILABLE).await;
            assert!(reason.contains("full"), "{reason}");
            let next = get(&http, &replica.url("/")).await;
            break assert_error(next, StatusCode::INSUFFICIENT_STORAGE).await;
        }
    };
    assert!(refusal.contains("full"), "{refusal}");
    assert!(acknowledged.len() > 20, "{} visits", acknowledged.len());
    assert_eq!(
        sqlite_records(&replica.db),
        acknowledged,
        "every acknowledged visit, nothing else"
    );
    for _ in 0..5 {
        assert_error(
            get(&http, &replica.url("/")).await,
            StatusCode::INSUFFICIENT_STORAGE,
        )
        .await;
        let probe = get(&http, &replica.url("/readyz")).await;
        assert_error(probe, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    // Reads still work on the full volume.
    assert_eq!(
        visit_count(&replica.server.base).await,
        acknowledged.len() as u64
    );
    println!(
        "Spin SQLite flavour, 512 KiB left on the volume: {} visits, then /readyz 503 and 507 x 6",
        acknowledged.len()
    );

    std::fs::remove_file(volume.path().join("filler")).unwrap();
    assert_eq!(get(&http, &replica.url("/readyz")).await.status(), 200);
    assert_eq!(get(&http, &replica.url("/")).await.status(), 200);
    assert_eq!(sqlite_records(&replica.db).len(), acknowledged.len() + 1);
}

/// Writes `path` until the volume is full, then gives `headroom` bytes back.
fn fill_all_but(path: &Path, headroom: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = [0u8; 4096];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the volume: {e}"),
        }
    }
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(headroom)).unwrap();
}

async fn get(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.get(url).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(no_spin, not_root),
    ignore = "needs the Spin CLI (../shared/bin/spin, or SPIN_BIN) and root (it mounts tmpfs)"
)]
async fn sqlite_flavour_on_a_read_only_volume_is_503_and_recovers() {
    if !have_spin() {
        return;
    }
    let Some(volume) = Tmpfs::mount("1m") else {
        return;
    };
    let http = client();
    let replica = SpinReplica::start(volume.path());
    for _ in 0..3 {
        assert_eq!(get(&http, &replica.url("/")).await.status(), 200);
    }
    // The volume turns read-only between two runs of the replica (a node that mounts the claim
    // read-only). What this skips: turning it read-only under a running Spin; the kernel
    // refuses to remount tmpfs read-only while a file on it is open for writing (EBUSY), and
    // only its own forced remount (ext4 errors=remount-ro) does that to a live mount.
    drop(replica);
    // Killed, Spin's trigger process may still be closing its files for a moment.
    volume.remount_under_load("ro");
    let replica = SpinReplica::start(volume.path());
    let message = assert_error(
        get(&http, &replica.url("/")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(message.contains("read-only"), "{message}");
    let reason = assert_error(
        get(&http, &replica.url("/readyz")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(reason.contains("read-only"), "{reason}");
    // In WAL mode SQLite cannot even read without creating its side files: /visits is 503
    // too, while every visit stays on the volume.
    assert_error(
        get(&http, &replica.url("/visits")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;

    // Writable again: a restarted replica has every visit and records the next.
    drop(replica);
    volume.remount("rw");
    let replica = SpinReplica::start(volume.path());
    assert_eq!(
        visit_count(&replica.server.base).await,
        3,
        "the visits recorded before are all there"
    );
    assert_eq!(get(&http, &replica.url("/")).await.status(), 200);
    assert_eq!(sqlite_records(&replica.db).len(), 4);
}

/// k8s/show.sh against three real replicas (Spin, SQLite flavour) with different visits. The
/// only stand-in is the API server: a `kubectl` that lists the three pods and forwards
/// `get --raw .../pods/POD:PORT/proxy/PATH` to that replica's loopback port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_spin,
    ignore = "needs the Spin CLI: ../shared/bin/spin beside the repo, or SPIN_BIN"
)]
async fn show_script_prints_each_replicas_own_visits() {
    if !have_spin() {
        return;
    }
    let volumes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas: Vec<_> = volumes
        .iter()
        .map(|v| SpinReplica::start(v.path()))
        .collect();
    let http = client();
    for (i, replica) in replicas.iter().enumerate() {
        for _ in 0..(2 * i + 3) {
            assert_eq!(
                http.get(replica.url("/")).send().await.unwrap().status(),
                200
            );
        }
    }
    let ports: Vec<u16> = replicas
        .iter()
        .map(|r| r.server.base.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let api = StandInApiServer::new(&ports);
    let show = |env: &[(&str, &str)]| api.show(env);

    let out = show(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    println!("k8s/show.sh -t 2, three Spin replicas behind a stand-in API server:\n{text}");
    for (i, replica) in replicas.iter().enumerate() {
        let records = sqlite_records(&replica.db);
        assert_eq!(records.len(), 2 * i + 3);
        let block = format!(
            "app-wasm-{i}: {} visits\n  {}\n  {}\n",
            records.len(),
            records[records.len() - 2],
            records[records.len() - 1]
        );
        assert!(text.contains(&block), "missing:\n{block}\nin:\n{text}");
    }

    let out = show(&[("POD2_READY", "False")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("app-wasm-2: not ready, skipped"), "{text}");
    let out = show(&[("NO_PODS", "1")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pods match"));
}

/// A store of APP_WASM_SQLITE_ROWS visits (200,000 by default; the closing note's figures use
/// 10 million), in Spin's key-value table as the component writes it: 20 concurrent visits
/// follow them, and the count and `?tail=` are read from the ends of the rowid b-tree. Prints each call's time;
/// speed targets live in the benchmark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_spin,
    ignore = "needs the Spin CLI: ../shared/bin/spin beside the repo, or SPIN_BIN"
)]
async fn a_big_store_is_counted_and_paged_from_its_ends() {
    // Spin's own statement (crates/key-value-spin/src/store.rs, v3.6.3), so the rows are what
    // the key-value store's `set` makes.
    const SPIN_KV_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
        store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))";
    if !have_spin() {
        return;
    }
    let rows: i64 = std::env::var("APP_WASM_SQLITE_ROWS")
        .map(|v| v.parse().expect("APP_WASM_SQLITE_ROWS is a number"))
        .unwrap_or(200_000);
    let at = |x: i64| {
        format!(
            "2026-11-27T{:02}:{:02}:{:02}.{:05}+03:00",
            x / 3_600_000 % 24,
            x / 60_000 % 60,
            x / 1000 % 60,
            x % 100_000
        )
    };
    let volume = tempfile::tempdir().unwrap();
    let db_path = volume.path().join("visits.db");
    let made = std::time::Instant::now();
    rusqlite::Connection::open(&db_path)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             {SPIN_KV_SCHEMA};
             WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows}),
               v(at, x) AS (SELECT printf('2026-11-27T%02d:%02d:%02d.%05d+03:00',
                 x / 3600000 % 24, x / 60000 % 60, x / 1000 % 60, x % 100000), x FROM n)
             INSERT INTO {KV_TABLE} (store, key, value)
               SELECT '{STORE}', printf('visit/%s/%032x', at, x), CAST(at AS BLOB) FROM v;"
        ))
        .unwrap();
    println!("{rows} visits made in {:?}", made.elapsed());

    let replica = SpinReplica::start(volume.path());
    let http = client();
    let timed = |path: &'static str| {
        let (http, url) = (http.clone(), replica.url(path));
        async move {
            let started = std::time::Instant::now();
            let resp = http.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            (resp.text().await.unwrap(), started.elapsed())
        }
    };
    let started = std::time::Instant::now();
    let mut visited = concurrent_visits(&replica.server.base, 20).await;
    let visits_took = started.elapsed();
    visited.sort();
    let (summary, counted) = timed("/visits").await;
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["visits"], rows + 20);
    assert_eq!(summary["first"], at(1));
    let (tail, tailed) = timed("/visits?tail=30").await;
    let tail: Vec<String> = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(&tail).unwrap()["tail"].clone(),
    )
    .unwrap();
    let expected: Vec<String> = (rows - 9..=rows).map(at).collect();
    assert_eq!(
        tail[..10],
        expected[..],
        "the last old ones, in order, then the new"
    );
    let mut new_ones = tail[10..].to_vec();
    new_ones.sort();
    assert_eq!(new_ones, visited, "the new visits follow the old ones");
    let (text, texted) = timed("/visits?format=text&tail=3").await;
    assert_eq!(text.lines().collect::<Vec<_>>(), tail[27..].to_vec());
    // The page's 24 hourly bars: 25 searches by key, whatever the store holds. The old
    // visits are days ago, so the bars hold exactly the 20 new ones.
    let (page, paged) = timed("/visits?format=html").await;
    assert!(page.contains(&format!("<strong id=\"visits\">{}</strong>", rows + 20)));
    let bars: u64 = page
        .split("data-visits=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(bars, 20, "the last day's bars hold the new visits only");
    assert_eq!(sqlite_records(&replica.db).len() as i64, rows + 20);
    println!(
        "{rows} visits: 20 concurrent visits {visits_took:?}; /visits {counted:?}; \
         /visits?tail=30 {tailed:?}; /visits?format=text&tail=3 {texted:?}; \
         /visits?format=html {paged:?}"
    );
}

/// Power cuts under load, on a file system that loses what was not synced
/// (`tests/powercut-fs`, as in host/tests/power_cut.rs): `spin up` with the SQLite flavour
/// keeps its store on the mount; 64 clients visit; the power goes at a random moment, Spin
/// is killed, power returns, Spin starts again on what is left. After each cut every visit
/// that got a 200 is in the store, the replica is ready, counts what it serves, and records
/// the next visit. SQLite's own recovery (WAL, checksums) does the work; this proves the
/// key-value path's `synchronous = FULL` commit really waits for the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(no_spin, no_fuse_mount),
    ignore = "needs the Spin CLI (../shared/bin/spin or SPIN_BIN), root and /dev/fuse"
)]
async fn sqlite_flavour_keeps_every_acknowledged_visit_through_power_cuts() {
    use powercut_fs::{Cut, PowerCutFs};
    let cuts: usize = std::env::var("APP_WASM_SPIN_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let volume = tempfile::tempdir().unwrap();
    let fs = PowerCutFs::mount(volume.path()).unwrap();
    let http = client();
    let started = std::time::Instant::now();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut rng = support::XorShift(0x5EED_5B1E_0000_0001);
    let policies = [Cut::Drop, Cut::Zeros, Cut::Prefix, Cut::Mixed];
    for round in 0..=cuts {
        let mut spin = SpinReplica::start(volume.path());
        let ready_within = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while get(&http, &spin.url("/readyz")).await.status() != StatusCode::OK {
            assert!(
                std::time::Instant::now() < ready_within,
                "round {round}: never ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let text = get(&http, &spin.url("/visits?format=text"))
            .await
            .text()
            .await
            .unwrap();
        let served: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(
            visit_count(&spin.server.base).await,
            served.len() as u64,
            "round {round}"
        );
        let lost = support::missing_from(&acknowledged, &served);
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged visits lost: {lost:?}"
        );
        let resp = get(&http, &spin.url("/")).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "round {round}: the next visit"
        );
        let shown: serde_json::Value = resp.json().await.unwrap();
        acknowledged.push(shown["moscow_time"].as_str().unwrap().to_owned());
        if round == cuts {
            println!(
                "{cuts} power cuts under spin up (SQLite flavour) in {:?}: {} visits \
                 acknowledged, all present; {} in the store",
                started.elapsed(),
                acknowledged.len(),
                served.len() + 1
            );
            break;
        }
        let load = tokio::spawn(support::visit_until_gone(spin.server.base.clone(), 64, 400));
        tokio::time::sleep(std::time::Duration::from_millis(50 + rng.next_u64() % 400)).await;
        let how = policies[round % policies.len()];
        let report = fs.cut(how, rng.next_u64());
        spin.server.kill();
        let acked_now = load.await.unwrap();
        fs.power_on();
        println!(
            "cut {round:2} {how:?}: {} acknowledged; {}",
            acked_now.len(),
            report.to_string().replace('\n', "; ")
        );
        acknowledged.extend(acked_now);
    }
    drop(fs);
}
