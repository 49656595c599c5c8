//! `parse` never panics, and whatever it accepts is a spec it can hand back.

use proptest::prelude::*;
use serde_json::Value;
use sluice_spec::parse;

const FULL: &str = include_str!("fixtures/full.yaml");
/// Every spec field users may mutate: the full canary spec and the examples with stages, webhooks and alerts.
const VALID: [&str; 4] = [
    FULL,
    include_str!("../../../examples/canary-with-stages.yaml"),
    include_str!("../../../examples/blue-green.yaml"),
    include_str!("../../../examples/ab-test.yaml"),
];

/// What a mutation does at the chosen place in the document.
#[derive(Clone, Debug)]
enum Mutation {
    Delete,
    Replace(Value),
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |float| float.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("0s"),
            Just("10s"),
            Just("{port}"),
            Just("127.0.0.1:1"),
            Just("request-duration")
        ]
        .prop_map(Value::from),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![Just(Mutation::Delete), scalar().prop_map(Mutation::Replace)]
}

/// Every place in the document, as a list of map keys and list indexes.
fn places(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(fields) => fields.iter().map(|(key, child)| (key.clone(), child)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, child)| (index.to_string(), child))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        prefix.push(key);
        out.push(prefix.clone());
        places(child, prefix, out);
        prefix.pop();
    }
}

fn apply(document: &mut Value, place: &[String], mutation: &Mutation) {
    let Some((last, parents)) = place.split_last() else {
        return;
    };
    let Some(parent) = parents.iter().try_fold(document, |value, key| match value {
        Value::Object(fields) => fields.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|index| items.get_mut(index)),
        _ => None,
    }) else {
        return;
    };
    match (parent, mutation) {
        (Value::Object(fields), Mutation::Delete) => {
            fields.remove(last);
        }
        (Value::Array(items), Mutation::Delete) => {
            if let Some(index) = last.parse::<usize>().ok().filter(|index| *index < items.len()) {
                items.remove(index);
            }
        }
        (Value::Object(fields), Mutation::Replace(value)) => {
            fields.insert(last.clone(), value.clone());
        }
        (Value::Array(items), Mutation::Replace(value)) => {
            if let Some(item) = last.parse::<usize>().ok().and_then(|index| items.get_mut(index)) {
                *item = value.clone();
            }
        }
        _ => {}
    }
}

fn assert_outcome_is_sound(text: &str) {
    match parse(text) {
        Ok(spec) => assert_eq!(parse(&serde_json::to_string(&spec).unwrap()).unwrap(), spec),
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            assert!(!errors.to_string().contains("internal error"), "{errors}\n{text}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-zA-Z0-9 :,\\-\\[\\]{}\"'#&*!|>\n]{0,200}") {
        assert_outcome_is_sound(&text);
    }

    #[test]
    fn mutated_valid_specs_are_accepted_or_reported_by_field(
        valid in prop::sample::select(VALID.to_vec()),
        choices in proptest::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4)
    ) {
        let mut document: Value = serde_saphyr::from_str(valid).unwrap();
        for (index, mutation) in &choices {
            let mut all: Vec<Vec<String>> = Vec::new();
            places(&document, &mut Vec::new(), &mut all);
            if all.is_empty() {
                break;
            }
            let place: &Vec<String> = index.get(&all);
            apply(&mut document, place, mutation);
        }
        assert_outcome_is_sound(&serde_json::to_string(&document).unwrap());
    }
}
