//! Visits per hour over the last 24 hours, and the inline SVG bar chart of them that the HTML
//! pages show. Records are fixed-width Moscow timestamps in time order, and timestamps with
//! one fixed offset sort as text in time order, so an hour's count is the difference of two
//! "visits before" counts: the store answers each with a binary search (`VisitLog::
//! visits_before`), a few dozen record reads for 10 M visits, never a scan.

use chrono::{DateTime, Duration, DurationRound, FixedOffset};
use std::fmt::Write;

/// Bars in the chart: the current hour and the 23 before it.
pub const HOURS: usize = 24;

/// One bar: the hour it starts (Moscow wall clock) and the visits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hour {
    /// `2026-11-27T08:00:00.00000+03:00`: a record's format, so it compares with records.
    pub start: String,
    pub visits: u64,
}

/// The 25 hour starts that bound the chart's 24 bars, oldest first, for a page shown at `now`
/// (a record's timestamp): from 23 hours before the current hour to the next hour's start.
/// `None` if `now` is not a timestamp.
pub fn hour_bounds(now: &str) -> Option<Vec<String>> {
    let now = DateTime::parse_from_rfc3339(now).ok()?;
    let this_hour = now.duration_trunc(Duration::hours(1)).ok()?;
    let first = this_hour - Duration::hours(HOURS as i64 - 1);
    Some(
        (0..=HOURS as i64)
            .map(|i| hour_start(first + Duration::hours(i)))
            .collect(),
    )
}

fn hour_start(at: DateTime<FixedOffset>) -> String {
    at.format("%Y-%m-%dT%H:00:00.00000%:z").to_string()
}

/// The bars, from the bounds and how many visits came before each (one more count than bars).
pub fn hours(bounds: &[String], before: &[u64]) -> Vec<Hour> {
    bounds
        .windows(2)
        .zip(before.windows(2))
        .map(|(start, counts)| Hour {
            start: start[0].clone(),
            visits: counts[1].saturating_sub(counts[0]),
        })
        .collect()
}

/// The hour's wall-clock label, `08:00`.
fn label(hour: &Hour) -> &str {
    &hour.start[11..16]
}

/// A bar chart as inline SVG, no script: every bar a `<rect class="bar">` with its hour and
/// count in `data-` attributes and a `<title>` (a tooltip, read by screen readers), the whole
/// labelled by `title_id` for assistive technology.
pub fn svg(hours: &[Hour], title_id: &str) -> String {
    const W: u64 = 480;
    const H: u64 = 120;
    const PLOT: u64 = 96; // bar area height; the rest holds the hour labels
    let peak = hours.iter().map(|h| h.visits).max().unwrap_or(0).max(1);
    let slot = W / hours.len().max(1) as u64;
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"{title_id}\" \
         viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let _ = writeln!(
        out,
        "<line x1=\"0\" y1=\"{PLOT}\" x2=\"{W}\" y2=\"{PLOT}\" stroke=\"#888\"/>"
    );
    for (i, hour) in hours.iter().enumerate() {
        let x = i as u64 * slot;
        // A bar of zero visits is drawn one pixel high, so every hour has a visible slot.
        let height = (hour.visits * (PLOT - 4)).div_ceil(peak).max(1);
        let (label, visits) = (label(hour), hour.visits);
        let noun = if visits == 1 { "visit" } else { "visits" };
        let _ = writeln!(
            out,
            "<rect class=\"bar\" data-hour=\"{label}\" data-visits=\"{visits}\" x=\"{}\" \
             y=\"{}\" width=\"{}\" height=\"{height}\" fill=\"#3867d6\">\
             <title>{label}: {visits} {noun}</title></rect>",
            x + 1,
            PLOT - height,
            slot - 2,
        );
        if i % 3 == 0 {
            let _ = writeln!(
                out,
                "<text x=\"{x}\" y=\"{}\" font-size=\"10\" fill=\"#555\">{label}</text>",
                H - 10
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_are_25_hour_starts_ending_after_the_current_hour() {
        let bounds = hour_bounds("2026-11-27T08:03:19.12345+03:00").unwrap();
        assert_eq!(bounds.len(), HOURS + 1);
        assert_eq!(bounds[0], "2026-11-26T09:00:00.00000+03:00");
        assert_eq!(bounds[23], "2026-11-27T08:00:00.00000+03:00");
        assert_eq!(bounds[24], "2026-11-27T09:00:00.00000+03:00");
        // Each is a record's width and sorts like the times it stands for.
        assert!(bounds.iter().all(|b| b.len() == 31));
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        assert!(bounds[23].as_str() <= "2026-11-27T08:03:19.12345+03:00");
        // Across a month and a year.
        let bounds = hour_bounds("2027-01-01T00:59:59.99999+03:00").unwrap();
        assert_eq!(bounds[0], "2026-12-31T01:00:00.00000+03:00");
        assert_eq!(bounds[24], "2027-01-01T01:00:00.00000+03:00");
        assert_eq!(hour_bounds("not a time"), None);
    }

    #[test]
    fn an_hours_visits_are_the_difference_of_the_counts_before_its_bounds() {
        let bounds = hour_bounds("2026-11-27T08:03:19.12345+03:00").unwrap();
        let mut before = vec![10; HOURS + 1];
        before[23] = 12; // 2 visits in the hour starting 07:00
        before[24] = 15; // 3 in the current hour
        let hours = hours(&bounds, &before);
        assert_eq!(hours.len(), HOURS);
        assert_eq!(hours[22].visits, 2);
        assert_eq!(label(&hours[22]), "07:00");
        assert_eq!(hours[23].visits, 3);
        assert_eq!(hours.iter().map(|h| h.visits).sum::<u64>(), 5);
    }

    #[test]
    fn the_chart_has_a_bar_per_hour_scaled_to_the_busiest() {
        let hours: Vec<Hour> = (0..HOURS as u64)
            .map(|i| Hour {
                start: format!("2026-11-27T{i:02}:00:00.00000+03:00"),
                visits: i % 5,
            })
            .collect();
        let svg = svg(&hours, "chart-title");
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), HOURS);
        assert!(svg.contains("aria-labelledby=\"chart-title\""));
        assert!(svg.contains("data-hour=\"04:00\" data-visits=\"4\""));
        // The busiest hours reach the top of the plot; an empty hour is one pixel.
        assert!(svg.contains("data-visits=\"4\" x=\"81\" y=\"4\" width=\"18\" height=\"92\""));
        assert!(svg.contains("data-visits=\"0\" x=\"1\" y=\"95\" width=\"18\" height=\"1\""));
        assert!(svg.contains("<title>01:00: 1 visit</title>"));
        assert!(svg.contains("<title>02:00: 2 visits</title>"));
    }
}
