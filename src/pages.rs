//! The HTML pages of `GET /` and `GET /visits` (for clients that prefer `text/html`): the
//! Moscow time, the replica, its count and its visits per hour over the last day as inline
//! SVG. No script and no outside resource: a page is one response, readable without styles,
//! and its chart has a table twin for screen readers and text browsers.

use std::fmt::Write;

use crate::moscow_time::UTC_OFFSET;
use crate::visit_chart::{self, Hour};

/// What a page shows. `replica` is a checked name (`replica_name::name_from`): safe in HTML.
pub struct Facts<'a> {
    pub now: &'a str,
    pub replica: Option<&'a str>,
    pub visits: u64,
    pub first: Option<&'a str>,
    pub last: Option<&'a str>,
    /// The last 24 hours, or why they could not be read (the page is still served: on `GET /`
    /// the visit is already recorded).
    pub hours: Result<Vec<Hour>, String>,
}

/// `GET /`: the time, and that this visit was recorded (`recorded` is false for HEAD).
pub fn home(facts: &Facts, recorded: bool) -> String {
    let by = served_by(facts.replica);
    let what = if recorded {
        format!("Your visit was recorded{by}.")
    } else {
        format!("Served{by}; nothing recorded.")
    };
    let body = format!(
        "<h1>Current time in Moscow</h1>\n\
         <p class=\"now\"><time id=\"now\" datetime=\"{now}\">{now}</time> (UTC{UTC_OFFSET})</p>\n\
         <p>{what}</p>\n",
        now = facts.now
    );
    page("Moscow time", facts, body)
}

/// `GET /visits`: this replica's count, first and last visit.
pub fn visits(facts: &Facts) -> String {
    let name = facts.replica.unwrap_or("this replica");
    let mut body = format!("<h1>Visits on {name}</h1>\n<dl>\n");
    for (term, value) in [("First", facts.first), ("Last", facts.last)] {
        if let Some(at) = value {
            let _ = writeln!(
                body,
                "<dt>{term} visit</dt><dd><time datetime=\"{at}\">{at}</time></dd>"
            );
        }
    }
    body.push_str("</dl>\n");
    page("Visits", facts, body)
}

fn served_by(replica: Option<&str>) -> String {
    replica.map_or(String::new(), |r| {
        format!(" by <code id=\"replica\">{r}</code>")
    })
}

fn page(title: &str, facts: &Facts, body: String) -> String {
    let on = facts.replica.map_or(String::new(), |r| format!(" on {r}"));
    let visits = facts.visits;
    let noun = if visits == 1 { "visit" } else { "visits" };
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}{on}</title>\n<style>{STYLE}</style></head>\n<body><main>\n{body}\
         <p><strong id=\"visits\">{visits}</strong> {noun} on this replica's volume.</p>\n"
    );
    match &facts.hours {
        Ok(hours) => {
            let _ = write!(
                out,
                "<figure>\n<figcaption id=\"chart-title\">Visits per hour{on}, the last 24 \
                 hours (Moscow time)</figcaption>\n{}</figure>\n",
                visit_chart::svg(hours, "chart-title")
            );
            out.push_str(&table(hours));
        }
        Err(why) => {
            let _ = writeln!(out, "<p class=\"note\">No chart: {}</p>", escape_html(why));
        }
    }
    out.push_str(
        "<nav><a href=\"/\">Visit again</a> · <a href=\"/visits\">Visits</a> · \
         <a href=\"/visits?format=text\">The log</a> · <a href=\"/metrics\">Metrics</a></nav>\n\
         </main></body></html>\n",
    );
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;\
padding:0 1rem;color:#222}.now{font-size:1.4rem}.chart{max-width:100%;height:auto}\
figure{margin:1rem 0}dd{margin:0 0 .3rem 1rem}nav{margin-top:1rem}\
table{border-collapse:collapse}th,td{padding:0 .6rem;text-align:right}.note{color:#a33}";

/// The chart's numbers as a table, folded away: for screen readers and text browsers.
fn table(hours: &[Hour]) -> String {
    let mut out = String::from(
        "<details><summary>Visits per hour as a table</summary>\n<table>\
         <thead><tr><th scope=\"col\">Hour from</th><th scope=\"col\">Visits</th></tr></thead>\
         <tbody>\n",
    );
    for hour in hours {
        let _ = writeln!(
            out,
            "<tr><td><time datetime=\"{}\">{}</time></td><td>{}</td></tr>",
            hour.start,
            &hour.start[11..16],
            hour.visits
        );
    }
    out.push_str("</tbody></table></details>\n");
    out
}

/// Text made safe for HTML element content (error messages quote bytes from the volume).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-27T08:03:19.12345+03:00";

    fn facts(hours: Result<Vec<Hour>, String>) -> Facts<'static> {
        Facts {
            now: NOW,
            replica: Some("app-wasm-1"),
            visits: 7,
            first: Some("2026-11-26T10:00:00.00000+03:00"),
            last: Some(NOW),
            hours,
        }
    }

    fn day() -> Vec<Hour> {
        let bounds = visit_chart::hour_bounds(NOW).unwrap();
        let before: Vec<u64> = (0..bounds.len() as u64).map(|i| i / 4).collect();
        visit_chart::hours(&bounds, &before)
    }

    #[test]
    fn the_home_page_names_the_time_the_replica_its_count_and_draws_24_bars() {
        let page = home(&facts(Ok(day())), true);
        assert!(page.starts_with("<!doctype html>\n<html lang=\"en\">"));
        assert!(page.contains(&format!("<time id=\"now\" datetime=\"{NOW}\">{NOW}</time>")));
        assert!(page.contains("Your visit was recorded by <code id=\"replica\">app-wasm-1</code>"));
        assert!(page.contains("<strong id=\"visits\">7</strong> visits"));
        assert_eq!(page.matches("<rect class=\"bar\"").count(), 24);
        assert_eq!(page.matches("<tr><td><time").count(), 24);
        assert!(page.contains("aria-labelledby=\"chart-title\""));
        assert!(!page.contains("<script"));
        assert!(home(&facts(Ok(day())), false).contains("nothing recorded"));
    }

    #[test]
    fn the_visits_page_shows_first_and_last_and_a_reason_instead_of_a_chart() {
        let page = visits(&facts(Err("data volume I/O error: <bad> & worse".into())));
        assert!(page.contains("<h1>Visits on app-wasm-1</h1>"));
        assert!(page.contains("<dt>Last visit</dt>"));
        assert!(page.contains("No chart: data volume I/O error: &lt;bad&gt; &amp; worse"));
        assert!(!page.contains("<svg"));
    }
}
