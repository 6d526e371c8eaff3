//! The runner's own metrics of one replica's requests, in the Prometheus text format 0.0.4:
//! requests by route and status, and how long each took until its response head. A replica's
//! `GET /metrics` gets them after the component's visit metrics (`app_wasm::metrics`), so one
//! scrape of a replica shows both. They count from the runner's start, as counters do.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use app_wasm::app::Route;
use hyper::StatusCode;

/// Upper bounds of the latency buckets, in seconds: a visit takes about a millisecond on a
/// local disk with its sync; the top buckets are the deadline's range (1 s by default).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A request's route as a label: a path the contract does not know is `other`, so a client
/// cannot mint a series per path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteLabel(Option<Route>);

impl RouteLabel {
    pub fn of_path(path: &str) -> Self {
        RouteLabel(Route::from_path(path))
    }

    fn all() -> impl Iterator<Item = RouteLabel> {
        Route::ALL
            .into_iter()
            .map(Some)
            .chain([None])
            .map(RouteLabel)
    }

    /// The route's path, `None` for a path no route has.
    pub fn route(self) -> Option<&'static str> {
        self.0.map(Route::path)
    }

    pub fn as_str(self) -> &'static str {
        self.0.map_or("other", Route::path)
    }

    pub fn is_metrics(self) -> bool {
        self.0 == Some(Route::Metrics)
    }
}

#[derive(Default)]
struct Histogram {
    /// Requests at or under each bound of `BUCKETS` (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

#[derive(Default)]
struct Figures {
    requests: BTreeMap<(RouteLabel, u16), u64>,
    latency: BTreeMap<RouteLabel, Histogram>,
}

/// One replica's request figures. One short lock per request: a visit spends a thousand
/// times longer in its sync.
#[derive(Default)]
pub struct RequestMetrics(Mutex<Figures>);

impl RequestMetrics {
    pub fn record(&self, route: RouteLabel, status: StatusCode, elapsed: Duration) {
        let mut figures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *figures
            .requests
            .entry((route, status.as_u16()))
            .or_default() += 1;
        let histogram = figures.latency.entry(route).or_default();
        histogram.observe(elapsed.as_secs_f64());
    }

    /// The exposition of every figure so far. Every route has a latency histogram from the
    /// start (zeros until it is used), so a dashboard's series exist before the first request.
    pub fn render(&self) -> String {
        let figures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(4096);
        let name = "app_wasm_http_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests this replica answered since the runner started, by \
             route (other: a path no route has) and status."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for ((route, status), count) in &figures.requests {
            let route = route.as_str();
            let _ = writeln!(
                out,
                "{name}{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let name = "app_wasm_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a request's arrival to its response head, by route."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let empty = Histogram::default();
        for route in RouteLabel::all() {
            let histogram = figures.latency.get(&route).unwrap_or(&empty);
            let route = route.as_str();
            let mut cumulative = 0;
            for (bound, in_bucket) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += in_bucket;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let (count, sum) = (histogram.count, histogram.sum_seconds);
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_are_counted_by_route_and_status_and_unknown_paths_share_one_label() {
        let metrics = RequestMetrics::default();
        metrics.record(RouteLabel::of_path("/"), StatusCode::OK, ms(1));
        metrics.record(RouteLabel::of_path("/"), StatusCode::OK, ms(2));
        metrics.record(
            RouteLabel::of_path("/"),
            StatusCode::SERVICE_UNAVAILABLE,
            ms(3),
        );
        metrics.record(RouteLabel::of_path("/nope"), StatusCode::NOT_FOUND, ms(1));
        metrics.record(
            RouteLabel::of_path("/also-nope"),
            StatusCode::NOT_FOUND,
            ms(1),
        );
        let text = metrics.render();
        let count = |labels: &str| {
            let prefix = format!("app_wasm_http_requests_total{{{labels}}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(|v| v.parse::<u64>().unwrap())
        };
        assert_eq!(count(r#"route="/",status="200""#), Some(2));
        assert_eq!(count(r#"route="/",status="503""#), Some(1));
        assert_eq!(count(r#"route="other",status="404""#), Some(2));
        assert_eq!(count(r#"route="/visits",status="200""#), None);
    }

    #[test]
    fn the_histogram_is_cumulative_and_every_route_has_one_from_the_start() {
        let metrics = RequestMetrics::default();
        let home = RouteLabel::of_path("/");
        for elapsed in [ms(0), ms(1), ms(7), ms(700), ms(9_000)] {
            metrics.record(home, StatusCode::OK, elapsed);
        }
        let text = metrics.render();
        let bucket = |route: &str, le: &str| {
            let prefix = format!(
                "app_wasm_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} "
            );
            let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
            line.unwrap_or_else(|| panic!("no bucket {route} {le} in\n{text}"))
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(bucket("/", "0.0005"), 1);
        assert_eq!(bucket("/", "0.001"), 2);
        assert_eq!(bucket("/", "0.01"), 3);
        assert_eq!(bucket("/", "0.5"), 3);
        assert_eq!(bucket("/", "1"), 4);
        assert_eq!(bucket("/", "2.5"), 4);
        assert_eq!(bucket("/", "+Inf"), 5);
        assert!(text.contains("app_wasm_http_request_duration_seconds_count{route=\"/\"} 5\n"));
        let sum = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("app_wasm_http_request_duration_seconds_sum{route=\"/\"} ")
            })
            .unwrap();
        assert!((sum.parse::<f64>().unwrap() - 9.708).abs() < 1e-9, "{sum}");
        for route in ["/visits", "/healthz", "/readyz", "/metrics", "other"] {
            assert_eq!(bucket(route, "+Inf"), 0, "{route}");
        }
    }
}
