use http::HeaderValue;
use proptest::prelude::*;
use serde_json::json;
use sluice_spec::{Duration, NoiseMargin};

use super::*;

fn shadow(ignore: &[&str], headers: &[&str]) -> Shadow {
    Shadow {
        share: 10,
        duration: "1m".parse::<Duration>().expect("a duration"),
        max_diff_rate: 1.0,
        ignore: ignore.iter().map(|entry| (*entry).to_owned()).collect(),
        headers: headers.iter().map(|name| (*name).to_owned()).collect(),
        methods: vec!["GET".to_owned()],
        max_body_bytes: 1 << 20,
        noise: NoiseMargin::default(),
    }
}

fn settings(ignore: &[&str], headers: &[&str]) -> CompareSettings {
    CompareSettings::new(&shadow(ignore, headers)).expect("valid settings")
}

fn answer(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Answer {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, HeaderValue::from_static(value));
    }
    Answer {
        status: StatusCode::from_u16(status).expect("a status"),
        headers: map,
        body: Bytes::from(body.to_owned()),
    }
}

fn json_answer(body: &Value) -> Answer {
    answer(200, &[("content-type", "application/json")], &body.to_string())
}

/// The names of the fields that differ.
fn fields(expected: &Answer, other: &Answer, settings: &CompareSettings) -> Vec<String> {
    compare(expected, other, settings)
        .into_iter()
        .map(|difference| difference.field)
        .collect()
}

fn check_json(expected: Value, other: Value, ignore: &[&str], want: &[&str]) {
    let got = fields(&json_answer(&expected), &json_answer(&other), &settings(ignore, &[]));
    assert_eq!(got, want, "{expected} vs {other} ignoring {ignore:?}");
}

#[test]
fn equal_answers_have_no_difference() {
    let settings = settings(&[], &["etag"]);
    let one = answer(200, &[("content-type", "text/plain"), ("etag", "x")], "hello");
    assert!(compare(&one, &one.clone(), &settings).is_empty());
}

#[test]
fn json_values_differ_at_the_highest_path_where_they_differ() {
    let cases: [(Value, Value, &[&str]); 10] = [
        (
            json!({"a": {"b": [0, 1, {"c": 1}]}}),
            json!({"a": {"b": [0, 1, {"c": 2}]}}),
            &["$.a.b[2].c"],
        ),
        (
            json!({"total": 10, "id": "x"}),
            json!({"total": 11, "id": "x"}),
            &["$.total"],
        ),
        (json!({"a": 1}), json!({"a": 1, "b": 2}), &["$.b"]),
        (json!({"a": 1, "b": {"deep": 1}}), json!({"a": 1}), &["$.b"]),
        (json!([1, 2]), json!([1, 2, 3]), &["$[2]"]),
        (json!({"a": {"b": 1}}), json!({"a": 5}), &["$.a"]),
        (json!({"a": 1}), json!({"a": "1"}), &["$.a"]),
        (json!({"a": null}), json!({}), &["$.a"]),
        (json!(10), json!(11), &["$"]),
        (
            json!({"odd key": 1, "x": [true]}),
            json!({"odd key": 2, "x": [false]}),
            &["$.x[0]", "$[\"odd key\"]"],
        ),
    ];
    for (expected, other, want) in cases {
        check_json(expected, other, &[], want);
    }
}

#[test]
fn key_order_and_whitespace_are_not_differences() {
    let left = answer(200, &[], r#"{"a": 1, "b": [1, 2]}"#);
    let right = answer(200, &[], "{\"b\":[1,2],\n\"a\":1}");
    assert!(fields(&left, &right, &settings(&[], &[])).is_empty());
}

#[test]
fn ignored_paths_remove_their_fields_and_those_below() {
    let before = json!({"total": 10, "meta": {"time": 1, "id": "a"}, "items": [{"id": 1, "n": 1}, {"id": 2, "n": 1}]});
    let after = json!({"total": 11, "meta": {"time": 2, "id": "b"}, "items": [{"id": 3, "n": 1}, {"id": 4, "n": 2}]});
    check_json(
        before.clone(),
        after.clone(),
        &[],
        &[
            "$.items[0].id",
            "$.items[1].id",
            "$.items[1].n",
            "$.meta.id",
            "$.meta.time",
            "$.total",
        ],
    );
    check_json(
        before.clone(),
        after.clone(),
        &["$.meta", "$.items[*].id"],
        &["$.items[1].n", "$.total"],
    );
    check_json(
        before.clone(),
        after.clone(),
        &["$.items[0].id", "$.meta.time"],
        &["$.items[1].id", "$.items[1].n", "$.meta.id", "$.total"],
    );
    check_json(before, after, &["$"], &[]);
}

#[test]
fn status_content_type_and_configured_headers_are_compared() {
    let settings = settings(&[], &["ETag", "x-version"]);
    let left = answer(
        200,
        &[("content-type", "application/json"), ("etag", "1"), ("x-other", "a")],
        "{}",
    );
    let right = answer(
        201,
        &[("content-type", "text/plain"), ("x-version", "2"), ("x-other", "b")],
        "{}",
    );
    let differences = compare(&left, &right, &settings);
    let described: Vec<(&str, &str, &str)> = differences
        .iter()
        .map(|difference| {
            (
                difference.field.as_str(),
                difference.expected.as_str(),
                difference.actual.as_str(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("headers.content-type", "application/json", "text/plain"),
            ("headers.etag", "1", "(missing)"),
            ("headers.x-version", "(missing)", "2"),
            ("status", "200", "201"),
        ]
    );
}

#[test]
fn a_header_is_compared_with_all_its_values() {
    let settings = settings(&[], &["vary"]);
    let left = answer(200, &[("vary", "a"), ("vary", "b")], "");
    let right = answer(200, &[("vary", "a")], "");
    let differences = compare(&left, &right, &settings);
    assert_eq!(differences.len(), 1);
    assert_eq!(differences[0].expected, "a, b");
}

#[test]
fn ignored_headers_status_and_body_are_not_compared() {
    let left = answer(200, &[("content-type", "text/plain"), ("etag", "1")], "one");
    let right = answer(500, &[("content-type", "text/html"), ("etag", "2")], "two");
    assert_eq!(
        fields(&left, &right, &settings(&[], &["etag"])),
        ["body", "headers.content-type", "headers.etag", "status"]
    );
    let ignoring = settings(&["headers.Content-Type", "headers.ETAG", "status", "body"], &["etag"]);
    assert!(fields(&left, &right, &ignoring).is_empty());
}

#[test]
fn bodies_that_are_not_both_json_are_compared_byte_wise() {
    let settings = settings(&[], &[]);
    let differences = compare(&answer(200, &[], "hello"), &answer(200, &[], "hellO"), &settings);
    assert_eq!(
        differences,
        [Difference {
            field: "body".to_owned(),
            expected: "hello (5 bytes)".to_owned(),
            actual: "hellO (5 bytes)".to_owned(),
        }]
    );
    assert_eq!(
        fields(&answer(200, &[], "{}"), &answer(200, &[], "{} trailing"), &settings),
        ["body"]
    );
    assert_eq!(
        fields(&answer(200, &[], ""), &answer(200, &[], "null"), &settings),
        ["body"]
    );
    assert!(fields(&answer(200, &[], ""), &answer(200, &[], ""), &settings).is_empty());
}

#[test]
fn bodies_over_the_cap_are_skipped_but_status_and_headers_still_compared() {
    let mut spec = shadow(&[], &[]);
    spec.max_body_bytes = 4;
    let settings = CompareSettings::new(&spec).expect("valid");
    assert!(fields(&answer(200, &[], "12345"), &answer(200, &[], "54321"), &settings).is_empty());
    assert_eq!(
        fields(&answer(200, &[], "12345"), &answer(404, &[], "54321"), &settings),
        ["status"]
    );
    assert_eq!(
        fields(&answer(200, &[], "abcd"), &answer(200, &[], "dcba"), &settings),
        ["body"]
    );
}

#[test]
fn examples_are_short() {
    let long = "x".repeat(500);
    let differences = compare(
        &json_answer(&json!({"a": long, "b": {"nested": [long.clone(), long.clone()]}})),
        &json_answer(&json!({"a": "y", "b": 1})),
        &settings(&[], &[]),
    );
    assert_eq!(differences.len(), 2);
    for difference in differences {
        assert!(
            difference.expected.chars().count() <= VALUE_CHARS + 1,
            "{}",
            difference.expected
        );
        assert!(difference.expected.ends_with('…'), "{}", difference.expected);
    }
}

#[test]
fn a_body_differing_everywhere_lists_at_most_the_cap() {
    let left: Vec<u32> = (0..5_000).collect();
    let right: Vec<u32> = (1..5_001).collect();
    let differences = compare(
        &json_answer(&json!(left)),
        &json_answer(&json!(right)),
        &settings(&[], &[]),
    );
    assert_eq!(differences.len(), MAX_DIFFERENCES);
}

#[test]
fn malformed_settings_are_refused() {
    assert!(matches!(
        CompareSettings::new(&shadow(&["nope"], &[])),
        Err(ShadowError::Ignore { .. })
    ));
    assert!(matches!(
        CompareSettings::new(&shadow(&[], &["bad header"])),
        Err(ShadowError::Header { .. })
    ));
    let mut spec = shadow(&[], &[]);
    spec.methods = vec!["G E T".to_owned()];
    assert!(matches!(CompareSettings::new(&spec), Err(ShadowError::Method { .. })));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn ignore_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$".to_owned()),
        Just("$[*]".to_owned()),
        Just("$.a".to_owned()),
        Just("$[0].a[*]".to_owned()),
        Just("headers.etag".to_owned()),
        "\\$(\\.[a-c]|\\[[0-2*]\\]){1,4}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        left in proptest::collection::vec(any::<u8>(), 0..256),
        right in proptest::collection::vec(any::<u8>(), 0..256),
        status in 100_u16..1000,
        max in 0_u64..300,
    ) {
        let mut spec = shadow(&[], &["etag"]);
        spec.max_body_bytes = max;
        let settings = CompareSettings::new(&spec).expect("valid");
        let mut one = answer(200, &[], "");
        one.body = Bytes::from(left);
        let mut other = answer(200, &[("etag", "1")], "");
        other.status = StatusCode::from_u16(status).expect("in range");
        other.body = Bytes::from(right);
        let _ = compare(&one, &other, &settings);
    }

    #[test]
    fn arbitrary_json_never_panics_and_equal_values_never_differ(
        left in json_value(),
        right in json_value(),
        ignore in proptest::collection::vec(ignore_entry(), 0..3),
    ) {
        let ignore: Vec<&str> = ignore.iter().map(String::as_str).collect();
        let settings = settings(&ignore, &[]);
        let differences = compare(&json_answer(&left), &json_answer(&right), &settings);
        prop_assert!(differences.len() <= MAX_DIFFERENCES);
        prop_assert!(compare(&json_answer(&left), &json_answer(&left), &settings).is_empty());
        if left != right && ignore.is_empty() {
            prop_assert!(!differences.is_empty());
        }
        let names: Vec<&str> = differences.iter().map(|difference| difference.field.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(names, sorted);
    }
}
