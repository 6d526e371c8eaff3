//! Property tests (proptest) for the pure parsers and the record format: whatever the input,
//! they never panic, and the HTTP contract's one write path is `GET /` and nothing else.

use app_wasm::app::{handle, Body, Request};
use app_wasm::file_log::FileLog;
use app_wasm::moscow_time::format_moscow;
use app_wasm::negotiate::choose;
use app_wasm::record::{self, RECORD_LEN};
use app_wasm::replica_name::name_from;
use app_wasm::visit_log::VisitLog;
use chrono::{TimeZone, Utc};
use http::Method;
use proptest::prelude::*;

const NOW: &str = "2026-11-27T08:03:19.12345+03:00";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_instant_encodes_to_one_fixed_width_record_that_decodes_back(
        secs in 0i64..=253_402_300_799, // up to 9999-12-31
        micros in 0u32..1_000_000,
    ) {
        let at = Utc.timestamp_opt(secs, micros * 1000).unwrap();
        let ts = format_moscow(at);
        let line = record::encode(&ts);
        prop_assert_eq!(line.len() as u64, RECORD_LEN);
        prop_assert_eq!(record::decode(line.as_bytes()), Some(ts.as_str()));
    }

    #[test]
    fn decode_never_panics_and_accepts_only_whole_records(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Some(ts) = record::decode(&bytes) {
            prop_assert_eq!(ts.len() as u64, RECORD_LEN - 1);
            prop_assert_eq!(bytes[RECORD_LEN as usize - 1], b'\n');
        }
    }

    /// Valid records and then anything (what a cut may leave): exactly the records count.
    #[test]
    fn valid_records_count_the_records_before_anything_else(
        secs in proptest::collection::vec(0i64..=253_402_300_799, 0..20),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut log: Vec<u8> = secs
            .iter()
            .flat_map(|&s| record::encode(&format_moscow(Utc.timestamp_opt(s, 0).unwrap())).into_bytes())
            .collect();
        let first_junk = junk.get(..32.min(junk.len())).unwrap_or_default();
        let junk_is_a_record = record::decode(first_junk).is_some();
        log.extend_from_slice(&junk);
        let counted = record::valid_records(&log);
        if junk_is_a_record {
            prop_assert!(counted > secs.len() as u64);
        } else {
            prop_assert_eq!(counted, secs.len() as u64);
        }
    }

    #[test]
    fn negotiation_picks_only_what_is_offered(accept in ".{0,120}") {
        let offered = ["application/json", "text/html"];
        if let Some(kind) = choose(Some(&accept), &offered) {
            prop_assert!(offered.contains(&kind));
        }
    }

    #[test]
    fn replica_names_that_pass_are_safe_in_headers_and_html(raw in ".{0,300}") {
        if let Some(name) = name_from(Some(&raw)) {
            prop_assert!(!name.is_empty() && name.len() <= 253);
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any method, target and Accept: a precise status, and a visit only for a 200 `GET /`.
    #[test]
    fn only_get_slash_ever_records_a_visit(
        method in prop_oneof![
            Just("GET".to_owned()), Just("HEAD".to_owned()), Just("POST".to_owned()),
            "[A-Z]{1,10}", ".{0,12}",
        ],
        target in prop_oneof![
            Just("/".to_owned()), Just("/visits".to_owned()),
            "/(visits|healthz|readyz|metrics)?\\??[a-z=&%0-9.]{0,30}",
            "/[./%a-zA-Z0-9]{0,40}", ".{0,60}",
        ],
        accept in proptest::option::of(".{0,60}"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        // A method that is not an HTTP token never reaches `handle` (the adapter answers 400).
        let Ok(parsed) = Method::from_bytes(method.as_bytes()) else { return Ok(()) };
        let req = Request { method: &parsed, target: &target, accept: accept.as_deref(), replica: None };
        let reply = handle(&req, &log, NOW);
        prop_assert!([200, 400, 404, 405, 406].contains(&reply.status.as_u16()), "{} for {method} {target}", reply.status);
        let recorded = log.summary().unwrap().visits;
        let path = target.split('?').next().unwrap();
        let expect = u64::from(method == "GET" && path == "/" && reply.status == 200);
        prop_assert_eq!(recorded, expect, "{} {}", method, target);
        if let Body::Log(span) = reply.body {
            prop_assert!(span.skip + span.records <= recorded);
        }
    }
}
