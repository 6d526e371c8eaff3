//! The pages in a real browser: Debian's Chromium, headless, loads `GET /` and `GET /visits`
//! from `app-wasm up --replicas 2` (the runner binary) with its own `Accept`, and the DOM it
//! built must show the replica, its count and one bar per hour holding exactly the visits of
//! that hour, counted here from the seeded records (not with the app's search); the front's
//! `/replicas` must show every replica's count on disk. A screenshot of `/visits` and of
//! `/replicas` is kept in `target/browser/` (CI keeps it as an artifact).

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, DurationRound, FixedOffset, Utc};
use runner::Runner;
use support::{read_records, repo_root};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium run headless for one page, with a profile of its own (`--no-sandbox`: the tests
/// run as root, where Chromium's sandbox refuses to start).
fn chromium(profile: &Path, args: &[String], url: &str) -> String {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--no-first-run", "--disable-extensions", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The DOM Chromium built for `url`, serialized.
fn dom(profile: &Path, url: &str) -> String {
    chromium(profile, &["--dump-dom".into()], url)
}

/// The text of the element with `id` (the pages give the figures a test reads an id).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\"");
    let at = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find('<').unwrap();
    &rest[start..end]
}

/// Every chart bar as (hour label, visits), from their `data-` attributes, in order.
fn bars(dom: &str) -> Vec<(String, u64)> {
    dom.split("<rect class=\"bar\"")
        .skip(1)
        .map(|bar| {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let start = bar.find(&key).unwrap() + key.len();
                bar[start..].split('"').next().unwrap().to_owned()
            };
            (attr("data-hour"), attr("data-visits").parse().unwrap())
        })
        .collect()
}

fn moscow() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).unwrap()
}

fn record(at: DateTime<FixedOffset>) -> String {
    let ten_micros = at.timestamp_subsec_micros() / 10;
    format!("{}.{ten_micros:05}+03:00", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// A log of visits over the last day: hour `i` (0 = 23 hours ago) gets `i % 4 + 1` visits a
/// minute apart from its start, the current hour's only those already past.
fn seed_last_day(log: &Path) -> Vec<String> {
    let now = Utc::now().with_timezone(&moscow());
    let this_hour = now.duration_trunc(Duration::hours(1)).unwrap();
    let mut records = Vec::new();
    for i in 0..24 {
        let start = this_hour - Duration::hours(23 - i);
        for k in 0..(i % 4 + 1) {
            let at = start + Duration::minutes(k);
            if at < now {
                records.push(record(at));
            }
        }
    }
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(
        log,
        records.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    records
}

/// The visits of each hour in the 24 up to `now`, counted by comparing timestamps as text.
fn expected_bars(records: &[String], now: &str) -> Vec<(String, u64)> {
    let now = DateTime::parse_from_rfc3339(now).unwrap();
    let this_hour = now.duration_trunc(Duration::hours(1)).unwrap();
    (0..24)
        .map(|i| {
            let start = this_hour - Duration::hours(23 - i);
            let (from, to) = (record(start), record(start + Duration::hours(1)));
            let n = records
                .iter()
                .filter(|r| r.as_str() >= from.as_str() && r.as_str() < to.as_str())
                .count();
            (start.format("%H:00").to_string(), n as u64)
        })
        .collect()
}

fn screenshot(profile: &Path, url: &str, name: &str) -> PathBuf {
    let dir = repo_root().join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let args = [
        format!("--screenshot={}", path.display()),
        "--window-size=800,720".into(),
    ];
    chromium(profile, &args, url);
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        path.display()
    );
    println!(
        "screenshot of {url}: {} ({} bytes)",
        path.display(),
        png.len()
    );
    path
}

#[test]
#[cfg_attr(
    no_chromium,
    ignore = "needs Debian's Chromium: apt-get install chromium (/usr/bin/chromium)"
)]
fn chromium_shows_each_replicas_count_and_visits_per_hour() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log0 = data.join("app-wasm-0/visits.txt");
    let seeded = seed_last_day(&log0);
    let runner = Runner::start(&data, &["--replicas", "2"]);
    let profile = dir.path().join("chromium-profile");
    let (replica0, replica1) = (&runner.replicas[0].1, &runner.replicas[1].1);

    // GET / with the browser's own Accept: the HTML page, and one visit recorded.
    let home = dom(&profile, &format!("{replica0}/"));
    let now = text_of(&home, "now").to_owned();
    let on_disk = read_records(&log0);
    assert_eq!(on_disk.len(), seeded.len() + 1, "the browser's visit");
    assert_eq!(
        on_disk.last(),
        Some(&now),
        "the page shows the time it recorded"
    );
    assert_eq!(text_of(&home, "replica"), "app-wasm-0");
    assert_eq!(text_of(&home, "visits"), on_disk.len().to_string());
    let shown = bars(&home);
    assert_eq!(shown.len(), 24, "a bar per hour");
    assert_eq!(shown, expected_bars(&on_disk, &now));
    println!(
        "GET / on app-wasm-0 in Chromium: {} visits, bars {:?}",
        on_disk.len(),
        shown.iter().map(|(_, n)| n).collect::<Vec<_>>()
    );

    // GET /visits records nothing; the other replica has its own (empty) day.
    let page = dom(&profile, &format!("{replica0}/visits"));
    assert!(page.contains("<h1>Visits on app-wasm-0</h1>"), "{page}");
    assert_eq!(text_of(&page, "visits"), on_disk.len().to_string());
    assert_eq!(read_records(&log0).len(), on_disk.len());
    let empty = dom(&profile, &format!("{replica1}/visits"));
    assert_eq!(text_of(&empty, "visits"), "0");
    let empty_bars = bars(&empty);
    assert_eq!(empty_bars.len(), 24);
    assert!(empty_bars.iter().all(|(_, n)| *n == 0), "{empty_bars:?}");

    screenshot(
        &profile,
        &format!("{replica0}/visits"),
        "visits-app-wasm-0.png",
    );
    assert_eq!(
        read_records(&log0).len(),
        on_disk.len(),
        "a screenshot of /visits records nothing"
    );

    // The front's /replicas: a row per replica with the count on its volume, and each
    // replica's own page in a frame beside the others.
    let front = dom(&profile, &format!("{}/replicas", runner.base));
    for (name, _) in &runner.replicas {
        let on_disk = read_records(&data.join(name).join("visits.txt")).len();
        let row = format!("<tr data-replica=\"{name}\">");
        let row = &front[front
            .find(&row)
            .unwrap_or_else(|| panic!("no row {name}\n{front}"))..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!("data-visits=\"{on_disk}\">{on_disk}<")),
            "{name}: {on_disk} on disk, the front's row says {row}"
        );
        assert!(
            front.contains(&format!("title=\"Visits on {name}\"")),
            "{front}"
        );
    }
    assert_eq!(front.matches("<iframe").count(), runner.replicas.len());
    screenshot(
        &profile,
        &format!("{}/replicas", runner.base),
        "replicas.png",
    );
}
