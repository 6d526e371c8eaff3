//! Crash on purpose, count what survived (SQLite's habit): the runner binary serves 64
//! clients, is SIGKILLed at a random moment, and restarts on the same data dir. Every visit a
//! client saw acknowledged must be on disk, no record may be torn or merged, the count must
//! agree, and new visits must append cleanly. `APP_WASM_CRASH_ROUNDS` (default 20) sets the
//! number of rounds.

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use app_wasm::record::{decode, RECORD_LEN};
use runner::Runner;
use support::{client, visit_count, visit_until_gone, XorShift};

const CLIENTS: usize = 64;

/// The log after a crash: whole records (each must decode: none torn or merged inside) and
/// the length of a torn tail, which only the end may have.
fn inspect(log: &std::path::Path) -> (Vec<String>, u64) {
    let bytes = std::fs::read(log).unwrap_or_default();
    let whole = bytes.len() - bytes.len() % RECORD_LEN as usize;
    let records = bytes[..whole]
        .chunks(RECORD_LEN as usize)
        .map(|r| {
            decode(r)
                .unwrap_or_else(|| panic!("malformed record {:?}", String::from_utf8_lossy(r)))
                .to_owned()
        })
        .collect();
    (records, (bytes.len() - whole) as u64)
}

/// Kill points that differ per round; runs are repeatable (a fixed seed).
fn kill_points(rounds: usize) -> Vec<Duration> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..rounds)
        .map(|_| Duration::from_millis(50 + rng.next_u64() % 450))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_never_loses_an_acknowledged_visit() {
    let rounds: usize = std::env::var("APP_WASM_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("app-wasm-0/visits.txt");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut torn_tails = 0;
    for (round, after) in kill_points(rounds).into_iter().enumerate() {
        let runner = Runner::start(data.path(), &[]);
        // What the restarted replica counts is exactly the whole records on disk.
        let (before, _) = inspect(&log);
        assert_eq!(
            visit_count(&runner.base).await,
            before.len() as u64,
            "round {round}"
        );

        // Bounded: a round never sends more than 64 x 2,000 requests.
        let load = tokio::spawn(visit_until_gone(runner.base.clone(), CLIENTS, 2_000));
        tokio::time::sleep(after).await;
        runner.kill();
        let round_acks = load.await.unwrap();
        acknowledged.extend(round_acks.iter().cloned());

        let (records, torn) = inspect(&log);
        torn_tails += u64::from(torn > 0);
        let mut on_disk: HashMap<&str, usize> = HashMap::new();
        for r in &records {
            *on_disk.entry(r).or_default() += 1;
        }
        let mut missing = 0;
        let mut wanted: HashMap<&str, usize> = HashMap::new();
        for a in &acknowledged {
            *wanted.entry(a).or_default() += 1;
        }
        for (ts, n) in &wanted {
            if on_disk.get(ts).copied().unwrap_or(0) < *n {
                missing += 1;
            }
        }
        assert_eq!(
            missing, 0,
            "round {round}: acknowledged visits missing after SIGKILL"
        );
        println!(
            "round {round:>2}: killed after {after:?}, {} acknowledged this round, {} on disk, {} written but never acknowledged so far (in flight at a kill), torn tail {torn} B",
            round_acks.len(),
            records.len(),
            records.len() - acknowledged.len()
        );
        assert!(
            !round_acks.is_empty() || after < Duration::from_millis(100),
            "round {round} served nothing"
        );
    }

    // After the last crash: restart, visit, and the log is whole records only.
    let runner = Runner::start(data.path(), &[]);
    let resp = client()
        .get(format!("{}/", runner.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (records, torn) = inspect(&log);
    assert_eq!(torn, 0, "the next visit cuts any torn tail first");
    assert_eq!(visit_count(&runner.base).await, records.len() as u64);
    println!(
        "{rounds} SIGKILL rounds: {} visits acknowledged, all on disk; {} records in the log; {torn_tails} torn tails seen and cut",
        acknowledged.len(),
        records.len()
    );
}
