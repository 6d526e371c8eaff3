//! Prometheus text exposition format 0.0.4 for this replica's log.

use std::fmt::Write;

use crate::visit_log::Summary;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics for what the log holds right now: every figure is read from the volume, so it
/// survives restarts and is the same whichever instance answers the scrape.
pub fn render(figures: &Summary) -> String {
    let mut out = String::with_capacity(640);
    let mut metric = |name: &str, kind: &str, help: &str, labels: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{labels} {value}");
    };
    metric(
        "app_wasm_visits_total",
        "counter",
        "Visits recorded on this replica's volume.",
        "",
        figures.visits,
    );
    metric(
        "app_wasm_visits_log_bytes",
        "gauge",
        "Bytes of visits the store holds (visits.txt, or the SQLite database's pages).",
        "",
        figures.log_bytes,
    );
    metric(
        "app_wasm_visits_torn_bytes",
        "gauge",
        "Bytes after the last valid record that a crash or power cut left: never counted or \
         acknowledged, cut at the next visit.",
        "",
        figures.torn_bytes,
    );
    let mode = format!("{{mode=\"{}\"}}", figures.sync.name());
    metric(
        "app_wasm_visits_sync_info",
        "gauge",
        "What a 200 promises, always 1: mode data = the visit is on stable storage (fdatasync \
         or SQLite FULL), none = it survives a crash of the process, not a power cut.",
        &mode,
        1,
    );
    metric(
        "app_wasm_build_info",
        "gauge",
        "Component version, always 1.",
        concat!("{version=\"", env!("CARGO_PKG_VERSION"), "\"}"),
        1,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durability::SyncMode;

    #[test]
    fn every_metric_has_help_type_and_one_sample() {
        let text = render(&Summary {
            visits: 42,
            log_bytes: 42 * 32,
            ..Summary::default()
        });
        assert!(text.contains("# TYPE app_wasm_visits_total counter\napp_wasm_visits_total 42\n"));
        assert!(text.contains("\napp_wasm_visits_log_bytes 1344\n"));
        assert!(text.contains("\napp_wasm_visits_torn_bytes 0\n"));
        assert!(text.contains("\napp_wasm_visits_sync_info{mode=\"data\"} 1\n"));
        let unsynced = render(&Summary {
            sync: SyncMode::None,
            ..Summary::default()
        });
        assert!(unsynced.contains("\napp_wasm_visits_sync_info{mode=\"none\"} 1\n"));
        assert!(text.contains(&format!(
            "app_wasm_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} lacks HELP"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} lacks TYPE"
            );
        }
        assert!(text.ends_with('\n'));
    }
}
