use super::*;

fn differences(fields: &[&str]) -> Vec<Difference> {
    fields
        .iter()
        .map(|field| Difference {
            field: (*field).to_owned(),
            expected: "10".to_owned(),
            actual: "11".to_owned(),
        })
        .collect()
}

/// Feeds `compared` requests: the candidate differs in `field` on the first `candidate` of them and the
/// secondary on the first `noise`.
fn rates(field: &str, candidate: u64, noise: u64, compared: u64, margin: NoiseMargin) -> DiffReport {
    let mut accumulator = Accumulator::new(margin);
    for request in 0..compared {
        let on = |count: u64| {
            if request < count {
                differences(&[field])
            } else {
                Vec::new()
            }
        };
        accumulator.record("GET /", &on(candidate), &on(noise));
    }
    accumulator.report()
}

fn real(report: &DiffReport, field: &str) -> bool {
    report
        .fields
        .iter()
        .find(|diff| diff.field == field)
        .is_some_and(|diff| diff.real)
}

#[test]
fn a_field_the_candidate_changes_on_every_request_is_real() {
    let report = rates("$.total", 100, 0, 100, NoiseMargin::default());
    assert!(real(&report, "$.total"));
    assert_eq!(report.with_real_difference, 100);
    assert_eq!(report.diff_rate, 100.0);
    assert_eq!(report.fields[0].candidate_rate, 100.0);
    assert_eq!(report.fields[0].noise_rate, 0.0);
}

#[test]
fn a_field_differing_as_often_between_stables_is_noise() {
    for (candidate, noise) in [(100, 100), (50, 50), (50, 55), (3, 3)] {
        let report = rates("$.id", candidate, noise, 100, NoiseMargin::default());
        assert!(!real(&report, "$.id"), "candidate {candidate}%, stables {noise}%");
        assert_eq!(report.with_real_difference, 0);
    }
}

#[test]
fn the_absolute_margin_is_exclusive() {
    // 3 of 10,000 is exactly 0.03 percentage points above a noise of zero.
    assert!(!real(&rates("f", 3, 0, 10_000, NoiseMargin::default()), "f"));
    assert!(real(&rates("f", 4, 0, 10_000, NoiseMargin::default()), "f"));
    let five_points = NoiseMargin {
        relative: 0.0,
        absolute: 5.0,
    };
    assert!(!real(&rates("f", 15, 10, 100, five_points.clone()), "f"));
    assert!(real(&rates("f", 16, 10, 100, five_points), "f"));
}

#[test]
fn the_relative_margin_is_exclusive() {
    // 60% is exactly 20% more than 50%.
    assert!(!real(&rates("f", 60, 50, 100, NoiseMargin::default()), "f"));
    assert!(real(&rates("f", 61, 50, 100, NoiseMargin::default()), "f"));
    let doubled = NoiseMargin {
        relative: 100.0,
        absolute: 0.0,
    };
    assert!(!real(&rates("f", 40, 20, 100, doubled.clone()), "f"));
    assert!(real(&rates("f", 41, 20, 100, doubled), "f"));
}

#[test]
fn a_request_counts_once_and_only_for_its_real_fields() {
    let mut accumulator = Accumulator::new(NoiseMargin::default());
    for request in 0..100 {
        let mut candidate = vec!["$.id", "$.time"];
        if request % 10 == 0 {
            candidate.extend(["$.total", "status"]);
        }
        accumulator.record(
            &format!("GET /{request}"),
            &differences(&candidate),
            &differences(&["$.id", "$.time"]),
        );
    }
    let report = accumulator.report();
    assert_eq!(report.compared, 100);
    assert_eq!(report.with_real_difference, 10);
    assert_eq!(report.diff_rate, 10.0);
    let flagged: Vec<(&str, bool)> = report
        .fields
        .iter()
        .map(|diff| (diff.field.as_str(), diff.real))
        .collect();
    assert_eq!(
        flagged,
        [("$.total", true), ("status", true), ("$.id", false), ("$.time", false)]
    );
    let examples: Vec<&str> = report.fields[0]
        .examples
        .iter()
        .map(|example| example.request.as_str())
        .collect();
    assert_eq!(examples, ["GET /0", "GET /10", "GET /20"]);
    assert_eq!(report.fields[0].examples[0].primary, "10");
    assert_eq!(report.fields[0].examples[0].candidate, "11");
}

#[test]
fn requests_beyond_the_signature_cap_are_still_counted() {
    let bits: Vec<String> = (0..13).map(|bit| format!("$.bit{bit}")).collect();
    let mut accumulator = Accumulator::new(NoiseMargin::default());
    for request in 1_u32..=5_000 {
        let mut candidate: Vec<&str> = bits
            .iter()
            .enumerate()
            .filter(|(bit, _)| request & (1 << bit) != 0)
            .map(|(_, name)| name.as_str())
            .collect();
        if request % 10 == 0 {
            candidate.push("$.real");
        }
        let noise: Vec<&str> = bits.iter().map(String::as_str).collect();
        accumulator.record("GET /", &differences(&candidate), &differences(&noise));
    }
    assert_eq!(accumulator.signatures.len(), MAX_SIGNATURES);
    assert!(accumulator.overflow > 0);
    let report = accumulator.report();
    assert_eq!(report.with_real_difference, 500);
    assert!(real(&report, "$.real"));
    assert!(report.fields.iter().filter(|diff| diff.real).count() == 1);
}

#[test]
fn fields_beyond_the_field_cap_are_counted_together() {
    let mut accumulator = Accumulator::new(NoiseMargin::default());
    for request in 0..3_000 {
        accumulator.record("GET /", &differences(&[&format!("$.f{request}")]), &[]);
    }
    let report = accumulator.report();
    assert_eq!(report.fields.len(), MAX_FIELDS);
    let other = report
        .fields
        .iter()
        .find(|diff| diff.field == OTHER_FIELDS)
        .expect("other fields");
    assert_eq!(other.candidate_rate, percent(3_000 - (MAX_FIELDS as u64 - 1), 3_000));
    assert!(other.examples.is_empty());
    // Each field differs on one request in 3,000 (0.033%), over the absolute margin of 0.03 points.
    assert!(other.real);
    assert_eq!(report.with_real_difference, 3_000);
}

#[test]
fn the_verdict_compares_the_rate_with_the_limit() {
    let empty = Accumulator::new(NoiseMargin::default()).report();
    assert_eq!(empty.verdict(1.0), ShadowVerdict::NoTraffic);

    let report = rates("$.total", 1, 0, 100, NoiseMargin::default());
    assert_eq!(report.diff_rate, 1.0);
    assert_eq!(report.verdict(1.0), ShadowVerdict::Pass);
    let ShadowVerdict::Fail { summary } = report.verdict(0.5) else {
        panic!("1% is over 0.5%");
    };
    assert_eq!(
        summary,
        "1 of 100 compared requests (1.00%) differ for real: $.total (candidate 1.00%, stables 0.00%) (max 0.5%)"
    );
}

#[test]
fn the_summary_names_noise_and_requests_not_compared() {
    let mut accumulator = Accumulator::new(NoiseMargin::default());
    accumulator.record("GET /", &differences(&["$.id"]), &differences(&["$.id"]));
    accumulator.record_skipped();
    accumulator.record_dropped();
    accumulator.record_dropped();
    let report = accumulator.report();
    assert_eq!(report.received, 4);
    assert_eq!(
        report.summary(),
        "0 of 1 compared requests (0.00%) differ for real; noise: $.id; 1 skipped (body over maxBodyBytes); \
         2 dropped (too many in flight)"
    );
}

#[test]
fn the_report_round_trips_through_json() {
    let report = rates("$.total", 7, 1, 9, NoiseMargin::default());
    let text = serde_json::to_string(&report).expect("serialises");
    assert!(text.contains("\"withRealDifference\":7"), "{text}");
    assert!(text.contains("\"candidateRate\""), "{text}");
    let back: DiffReport = serde_json::from_str(&text).expect("deserialises");
    assert_eq!(back, report);
    let verdict = serde_json::to_string(&ShadowVerdict::Fail {
        summary: "x".to_owned(),
    })
    .expect("serialises");
    assert_eq!(verdict, r#"{"verdict":"fail","summary":"x"}"#);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const FIELDS: [&str; 4] = ["status", "$.a", "$.b[0]", "body"];

    fn request() -> impl Strategy<Value = (Vec<&'static str>, Vec<&'static str>)> {
        let subset = || proptest::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len());
        (subset(), subset())
    }

    proptest! {
        #[test]
        fn rates_stay_in_range_and_each_request_counts_once(
            requests in proptest::collection::vec(request(), 0..200),
        ) {
            let mut accumulator = Accumulator::new(NoiseMargin::default());
            for (candidate, noise) in &requests {
                accumulator.record("GET /", &differences(candidate), &differences(noise));
            }
            let report = accumulator.report();
            prop_assert_eq!(report.compared, requests.len() as u64);
            prop_assert!(report.with_real_difference <= report.compared);
            prop_assert!((0.0..=100.0).contains(&report.diff_rate));
            for field in &report.fields {
                prop_assert!((0.0..=100.0).contains(&field.candidate_rate));
                prop_assert!((0.0..=100.0).contains(&field.noise_rate));
                prop_assert!(field.examples.len() <= MAX_EXAMPLES);
            }
        }

        #[test]
        fn a_candidate_differing_exactly_like_a_stable_has_no_real_field(
            requests in proptest::collection::vec(request(), 1..200),
        ) {
            let mut accumulator = Accumulator::new(NoiseMargin::default());
            for (fields, _) in &requests {
                accumulator.record("GET /", &differences(fields), &differences(fields));
            }
            let report = accumulator.report();
            prop_assert_eq!(report.with_real_difference, 0);
            prop_assert!(report.fields.iter().all(|field| !field.real));
        }
    }
}
