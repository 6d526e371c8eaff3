//! Power cuts under load, on a file system that loses what was not synced
//! (`tests/powercut-fs`): app-wasm-0's volume is a powercut-fs mount; 64 clients visit; at a
//! random moment the power goes (every later file call fails with EIO, and what was not
//! synced is dropped, zeroed or kept in part, per the round's policy); the runner is killed,
//! power comes back, and the runner starts again on what is left. After each cut:
//! - every visit that got a 200, in any round so far, is a record on the volume, byte for byte;
//! - the replica is ready, its count is the records it serves, each a real timestamp that a
//!   client asked for (no phantom), and it records the next visit with no operator.
//!
//! What the stand-in skips: the kernel's own page cache is dropped at each restart by the
//! mount (every open re-reads), and the cut happens between file calls, never inside a
//! sector; a real disk may also reorder writes within what was synced, which fdatasync
//! forbids anyway.

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use powercut_fs::{Cut, PowerCutFs};
use runner::Runner;
use support::{client, missing_from, visit_until_gone, XorShift};

const CLIENTS: usize = 64;

/// The log's leading records as this test reads them (chrono, not the app's decoder), and
/// how many bytes follow them.
fn leading_records(log: &[u8]) -> (Vec<String>, usize) {
    let mut records = Vec::new();
    for r in log.chunks(32) {
        let Some(text) = r
            .strip_suffix(b"\n")
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            break;
        };
        if r.len() != 32 || chrono::DateTime::parse_from_rfc3339(text).is_err() {
            break;
        }
        records.push(text.to_owned());
    }
    let rest = log.len() - records.len() * 32;
    (records, rest)
}

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let resp = client().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_fuse_mount,
    ignore = "needs root and /dev/fuse to mount the power-cut file system"
)]
async fn every_acknowledged_visit_survives_power_cuts_and_no_phantom_is_counted() {
    let cuts: usize = std::env::var("APP_WASM_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("APP_WASM_POWER_CUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE_F00D_0001);
    println!("{cuts} power cuts, seed {seed} (APP_WASM_POWER_CUT_SEED replays them)");
    let mut rng = XorShift(seed);
    let data = tempfile::tempdir().unwrap();
    let volume = data.path().join("app-wasm-0");
    std::fs::create_dir(&volume).unwrap();
    let fs = PowerCutFs::mount(&volume).unwrap();
    let log = Path::new("visits.txt");
    let started = Instant::now();
    let mut acknowledged: Vec<String> = Vec::new();
    let (mut attempted_at_most, mut lost_unacked, mut leftovers_cut) = (0usize, 0usize, 0usize);
    let policies = [Cut::Drop, Cut::Zeros, Cut::Prefix, Cut::Mixed];
    for round in 0..cuts {
        // Every client's guest runs at once, so writes wait for syncs: cuts find them unsynced.
        let runner = Runner::start(data.path(), &["--max-running", "64"]);
        let base = runner.replicas[0].1.clone();

        // Restarted on what the last cut left: ready, counting exactly what it serves.
        let ready_within = Instant::now() + Duration::from_secs(15);
        while get_json(&format!("{base}/readyz")).await.0 != 200 {
            assert!(
                Instant::now() < ready_within,
                "round {round}: never ready again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, visits) = get_json(&format!("{base}/visits")).await;
        assert_eq!(status, 200, "round {round}: {visits}");
        let served = client()
            .get(format!("{base}/visits?format=text"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let served: Vec<String> = served.lines().map(str::to_owned).collect();
        assert_eq!(
            visits["visits"],
            served.len(),
            "round {round}: count vs served"
        );
        let on_disk = fs.read(log).unwrap_or_default();
        let (records, rest) = leading_records(&on_disk);
        assert_eq!(
            served, records,
            "round {round}: served = the valid records on the volume"
        );
        assert!(
            served.len() <= attempted_at_most,
            "round {round}: {} counted, at most {attempted_at_most} visits ever asked for: phantom",
            served.len()
        );
        let lost = missing_from(&acknowledged, &served);
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged visits lost: {lost:?}"
        );
        if rest > 0 {
            leftovers_cut += 1;
        }
        let (status, shown) = get_json(&format!("{base}/")).await;
        assert_eq!(status, 200, "round {round}: the next visit: {shown}");
        acknowledged.push(shown["moscow_time"].as_str().unwrap().to_owned());
        attempted_at_most += 1;

        // Load, then the cut at a random moment.
        let per_client = 400;
        let load = tokio::spawn(visit_until_gone(base.clone(), CLIENTS, per_client));
        attempted_at_most += CLIENTS * per_client;
        tokio::time::sleep(Duration::from_millis(20 + rng.next_u64() % 300)).await;
        let how = policies[round % policies.len()];
        let report = fs.cut(how, rng.next_u64());
        runner.kill();
        let acked_now = load.await.unwrap();
        fs.power_on();
        let after: Vec<String> = leading_records(&fs.read(log).unwrap_or_default()).0;
        let lost = missing_from(&acked_now, &after);
        assert!(
            lost.is_empty(),
            "round {round}, cut {how:?}: {} of {} acknowledged visits lost: {lost:?}\n{report}",
            lost.len(),
            acked_now.len()
        );
        lost_unacked += after
            .len()
            .saturating_sub(served.len() + 1 + acked_now.len());
        println!(
            "cut {round:2} {how:?}: {} acknowledged this round, {} records before, {} after; {}",
            acked_now.len(),
            served.len() + 1,
            after.len(),
            report.to_string().replace('\n', "; ")
        );
        acknowledged.extend(acked_now);
    }
    let runner = Runner::start(data.path(), &[]);
    let (_, visits) = get_json(&format!("{}/visits", runner.replicas[0].1)).await;
    println!(
        "{cuts} cuts in {:?}: {} visits acknowledged, all present; {} on the volume; \
         {leftovers_cut} restarts found a leftover to cut; {lost_unacked} unacknowledged visits \
         reached the disk",
        started.elapsed(),
        acknowledged.len(),
        visits["visits"]
    );
    assert!(visits["visits"].as_u64().unwrap() >= acknowledged.len() as u64);
    runner.kill();
    drop(fs);
}
