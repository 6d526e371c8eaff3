//! `Accept` header negotiation (RFC 9110 §12.5.1), just enough for a few fixed media types.

/// Picks the best of `offered` (server preference order, first = default) for an `Accept`
/// header. No header, or an empty one, means "anything": the first offer. `None` when the
/// client accepts none of them (every match has q=0 or nothing matches): a 406.
pub fn choose<'a>(accept: Option<&str>, offered: &[&'a str]) -> Option<&'a str> {
    choose_by(accept, offered, |offer| offer)
}

/// `choose` over any offers that name their media type, e.g. an enum of response forms.
pub fn choose_by<'m, T: Copy>(
    accept: Option<&str>,
    offered: &[T],
    media_type: impl Fn(T) -> &'m str,
) -> Option<T> {
    let accept = match accept.map(str::trim) {
        None | Some("") => return offered.first().copied(),
        Some(a) => a,
    };
    let ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
    let mut best: Option<(T, f32)> = None;
    for &offer in offered {
        let q = quality_for(&ranges, media_type(offer));
        // Strictly greater keeps the server's order on ties.
        if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((offer, q));
        }
    }
    best.map(|(offer, _)| offer)
}

struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f32,
}

impl<'a> MediaRange<'a> {
    fn parse(item: &'a str) -> Option<Self> {
        let mut parts = item.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let mut q = 1.0;
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    // A malformed weight makes the whole range unusable rather than guessing.
                    q = value
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))?;
                }
            }
        }
        Some(MediaRange {
            kind: kind.trim(),
            subtype: subtype.trim(),
            q,
        })
    }

    /// 3 = exact, 2 = `type/*`, 1 = `*/*`, 0 = no match.
    fn specificity(&self, kind: &str, subtype: &str) -> u8 {
        match (self.kind, self.subtype) {
            ("*", "*") => 1,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 2,
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 3,
            _ => 0,
        }
    }
}

/// The q of the most specific range that matches `offer`, 0 when none does.
fn quality_for(ranges: &[MediaRange], offer: &str) -> f32 {
    let (kind, subtype) = offer.split_once('/').unwrap_or((offer, ""));
    ranges
        .iter()
        .map(|r| (r.specificity(kind, subtype), r.q))
        .filter(|(spec, _)| *spec > 0)
        .max_by_key(|(spec, _)| *spec)
        .map_or(0.0, |(_, q)| q)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &[&str] = &["application/json", "text/html"];

    #[test]
    fn no_or_empty_accept_gets_the_default() {
        assert_eq!(choose(None, PAGE), Some("application/json"));
        assert_eq!(choose(Some("  "), PAGE), Some("application/json"));
    }

    #[test]
    fn curl_and_wildcards_get_json() {
        assert_eq!(choose(Some("*/*"), PAGE), Some("application/json"));
        assert_eq!(
            choose(Some("application/*"), PAGE),
            Some("application/json")
        );
    }

    #[test]
    fn a_browser_gets_html() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(choose(Some(firefox), PAGE), Some("text/html"));
    }

    #[test]
    fn weights_and_specificity_decide() {
        assert_eq!(
            choose(Some("application/json;q=0.4, text/html;q=0.5"), PAGE),
            Some("text/html")
        );
        // The exact range's q=0 beats the wildcard's q=1 for that type.
        assert_eq!(
            choose(Some("*/*, application/json;q=0"), PAGE),
            Some("text/html")
        );
        assert_eq!(choose(Some("TEXT/HTML"), PAGE), Some("text/html"));
    }

    #[test]
    fn nothing_acceptable_is_none() {
        assert_eq!(choose(Some("image/png"), PAGE), None);
        assert_eq!(
            choose(Some("application/json;q=0"), &["application/json"]),
            None
        );
        assert_eq!(choose(Some("application/json;q=7"), PAGE), None);
    }
}
