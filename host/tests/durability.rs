//! What a 200 waits for (`--sync`), seen from outside: strace attached to the real runner
//! counts the `fdatasync` calls on each replica's `visits.txt` while clients visit, and
//! `/metrics` names the mode in force. A power cut itself is not simulated here: this shows
//! the sync happens once per acknowledged visit (`data`) or never (`none`).

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runner::{signal, Runner};
use support::{client, concurrent_visits, visit_count};

/// Debian's strace (host/build.rs looks for it there).
const STRACE: &str = "/usr/bin/strace";

/// strace attached to every thread of `pid`, writing the file calls named in `calls` to
/// `out` with the path of each descriptor (`-y`). Returns once every thread is traced.
fn trace(pid: u32, calls: &str, out: &Path) -> Child {
    let child = Command::new(STRACE)
        // -ff: a file per thread (`out.TID`), so no call is split across lines by another
        // thread's output.
        .args(["-ff", "-qq", "-y", "-e", &format!("trace={calls}"), "-o"])
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning strace");
    // Attached when every thread of the process names a tracer (threads made later are
    // followed by -f).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !every_thread_traced(pid) {
        assert!(Instant::now() < deadline, "strace did not attach");
        std::thread::yield_now();
    }
    child
}

fn every_thread_traced(pid: u32) -> bool {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status")).is_ok_and(|status| {
            status
                .lines()
                .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
        })
    })
}

/// Detaches strace (SIGINT) and returns its successful `fdatasync` lines on paths ending in
/// `suffix`.
fn syncs_of(mut strace: Child, out: &Path, suffix: &str) -> Vec<String> {
    signal(strace.id(), "INT");
    strace.wait().unwrap();
    let needle = format!("{suffix}>) = 0");
    traced(out)
        .lines()
        .filter(|l| l.starts_with("fdatasync(") && l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// How many whole 32-byte records the trace shows appended to `visits.txt` (wasmtime-wasi's
/// append is one `pwritev2`; a `write` is counted too): the visits were traced at all.
fn appends_in(out: &Path) -> usize {
    traced(out)
        .lines()
        .filter(|l| {
            (l.starts_with("pwritev2(") || l.starts_with("write("))
                && l.contains("/visits.txt>")
                && l.ends_with(" = 32")
        })
        .count()
}

/// Every thread's trace (`out.TID`), concatenated.
fn traced(out: &Path) -> String {
    let prefix = format!("{}.", out.file_name().unwrap().to_str().unwrap());
    let dir = std::fs::read_dir(out.parent().unwrap()).unwrap();
    dir.flatten()
        .filter(|f| {
            f.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect()
}

async fn metrics(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_strace,
    ignore = "needs /usr/bin/strace (apt install strace) and root to attach it to the runner"
)]
async fn every_acknowledged_visit_is_synced_before_its_200() {
    const VISITS: usize = 200;
    let data = tempfile::tempdir().unwrap();
    let runner = Runner::start(data.path(), &[]);
    let out = data.path().join("strace.out");
    let strace = trace(runner.pid(), "fdatasync,fsync,pwritev2,write", &out);
    let acknowledged = concurrent_visits(&runner.base, VISITS).await;
    let all = syncs_of(strace, &out, "");
    let syncs: Vec<_> = all
        .iter()
        .filter(|l| l.contains("/app-wasm-0/visits.txt>"))
        .collect();
    // The log's directory, once its first record is in (visits that found it empty each do).
    assert!(
        all.iter().any(|l| l.contains("/app-wasm-0>)")),
        "no sync of the directory"
    );
    // One per visit, each after its append and before its response (the component returns
    // only after sync-data): a visit with no sync of its own would leave fewer.
    assert_eq!(acknowledged.len(), VISITS);
    assert_eq!(appends_in(&out), VISITS, "appends traced");
    assert_eq!(
        syncs.len(),
        VISITS,
        "fdatasync calls on visits.txt; strace saw:\n{}",
        traced(&out).lines().take(8).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(visit_count(&runner.base).await, VISITS as u64);
    assert!(metrics(&runner.base)
        .await
        .contains("\napp_wasm_visits_sync_info{mode=\"data\"} 1\n"));
    println!(
        "--sync data: {VISITS} concurrent visits, {} fdatasync on visits.txt",
        syncs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_strace,
    ignore = "needs /usr/bin/strace (apt install strace) and root to attach it to the runner"
)]
async fn sync_none_writes_without_syncing_and_says_so() {
    let data = tempfile::tempdir().unwrap();
    let runner = Runner::start(data.path(), &["--sync", "none"]);
    let out = data.path().join("strace.out");
    let strace = trace(runner.pid(), "fdatasync,fsync,pwritev2,write", &out);
    concurrent_visits(&runner.base, 50).await;
    let syncs = syncs_of(strace, &out, "");
    // The trace saw the 50 appends, and no sync of the log or its directory.
    assert_eq!(appends_in(&out), 50);
    assert_eq!(syncs, Vec::<String>::new());
    assert_eq!(visit_count(&runner.base).await, 50);
    assert!(metrics(&runner.base)
        .await
        .contains("\napp_wasm_visits_sync_info{mode=\"none\"} 1\n"));
}

#[test]
fn an_unknown_sync_mode_is_refused_at_start() {
    let out = Command::new(runner::runner_bin())
        .args(["up", "--sync", "fsync"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("neither \"data\" nor \"none\""), "{stderr}");
}
