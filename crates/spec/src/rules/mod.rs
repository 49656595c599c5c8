//! The checks a JSON Schema cannot express: relations between fields and per-metric bounds.
//!
//! They read the raw document rather than the typed spec so that they still run when other parts of the
//! document are broken, and `parse` can report every problem at once. Each rule looks only at values the
//! schema accepts and stays silent otherwise: the schema has already reported those.

mod release;

use serde_json::Value;

use crate::analysis::MetricName;
use crate::duration::Duration;
use crate::errors::Problem;
use crate::messages::{DURATION_EXPECTATION, expected};
use crate::path::FieldPath;
use crate::strategy::DEFAULT_MAX_WEIGHT;
use crate::syntax::PORT_PLACEHOLDER;

/// Every field that holds a duration; all of them must be longer than zero.
const DURATION_FIELDS: [&[&str]; 12] = [
    &["spec", "progressDeadline"],
    &["spec", "revision", "process", "readiness", "timeout"],
    &["spec", "strategy", "canary", "interval"],
    &["spec", "strategy", "abTest", "interval"],
    &["spec", "strategy", "blueGreen", "scaleDownDelay"],
    &["spec", "strategy", "blueGreen", "prePromotion", "loadTest", "duration"],
    &[
        "spec",
        "strategy",
        "blueGreen",
        "prePromotion",
        "loadTest",
        "slo",
        "p99",
    ],
    &["spec", "stages", "isolation", "loadTest", "duration"],
    &["spec", "stages", "isolation", "loadTest", "slo", "p99"],
    &["spec", "stages", "shadow", "duration"],
    &["spec", "analysis", "holdTimeout"],
    &["spec", "analysis", "evaluationInterval"],
];

/// All cross-field problems in the document.
pub(crate) fn check(document: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_port_placeholder(document, &mut problems);
    check_canary(document, &mut problems);
    check_metric_bounds(document, &mut problems);
    check_custom_metrics(document, &mut problems);
    check_durations(document, &mut problems);
    release::check(document, &mut problems);
    problems
}

fn lookup<'a>(document: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(document, |value, key| value.get(key))
}

/// Serde reads an explicit `null` as an absent optional field, so the rules do too.
fn present<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// A traffic percentage the schema accepts; others are already reported.
fn weight(value: &Value) -> Option<u64> {
    value.as_u64().filter(|weight| (1..=100).contains(weight))
}

fn check_port_placeholder(document: &Value, problems: &mut Vec<Problem>) {
    const COMMAND: [&str; 4] = ["spec", "revision", "process", "command"];
    let Some(command) = lookup(document, &COMMAND).and_then(Value::as_array) else {
        return;
    };
    let has_placeholder = command
        .iter()
        .any(|argument| argument.as_str().is_some_and(|text| text.contains(PORT_PLACEHOLDER)));
    if !command.is_empty() && !has_placeholder {
        problems.push(Problem::new(
            FieldPath::of(&COMMAND),
            format!("must contain the placeholder {PORT_PLACEHOLDER} in one of its elements"),
        ));
    }
}

fn check_canary(document: &Value, problems: &mut Vec<Problem>) {
    const CANARY: [&str; 3] = ["spec", "strategy", "canary"];
    let Some(canary) = lookup(document, &CANARY).filter(|canary| canary.is_object()) else {
        return;
    };
    let path = FieldPath::of(&CANARY);
    check_step_form(canary, &path, problems);
    if let Some(affinity) = present(canary, "sessionAffinity").filter(|a| a.is_object()) {
        let count = ["cookieName", "header"]
            .iter()
            .filter(|key| present(affinity, key).is_some())
            .count();
        if count != 1 {
            problems.push(Problem::new(
                path.key("sessionAffinity"),
                "set exactly one of cookieName or header",
            ));
        }
    }
    check_max_weight(canary, &path, problems);
    check_steps_increase(canary, &path, problems);
}

/// Exactly one of the two ways to write the steps, and `maxWeight` only with the one it belongs to.
fn check_step_form(canary: &Value, path: &FieldPath, problems: &mut Vec<Problem>) {
    match (present(canary, "stepWeight"), present(canary, "stepWeights")) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                path.clone(),
                "set either stepWeight or stepWeights, not both",
            ));
        }
        (None, None) => problems.push(Problem::new(path.clone(), "set either stepWeight or stepWeights")),
        (None, Some(_)) if present(canary, "maxWeight").is_some() => {
            problems.push(Problem::new(path.key("maxWeight"), "only allowed with stepWeight"));
        }
        _ => {}
    }
}

/// The first step may not already overshoot the last one, including the default `maxWeight`.
fn check_max_weight(canary: &Value, path: &FieldPath, problems: &mut Vec<Problem>) {
    let Some(step) = present(canary, "stepWeight").and_then(weight) else {
        return;
    };
    match present(canary, "maxWeight") {
        Some(max) => {
            if let Some(max) = weight(max).filter(|max| *max < step) {
                problems.push(Problem::new(
                    path.key("maxWeight"),
                    format!("must be at least stepWeight ({step}), got {max}"),
                ));
            }
        }
        None if step > u64::from(DEFAULT_MAX_WEIGHT) => problems.push(Problem::new(
            path.key("stepWeight"),
            format!("must be at most maxWeight ({DEFAULT_MAX_WEIGHT} when not set), got {step}"),
        )),
        None => {}
    }
}

fn check_steps_increase(canary: &Value, path: &FieldPath, problems: &mut Vec<Problem>) {
    let Some(steps) = present(canary, "stepWeights").and_then(Value::as_array) else {
        return;
    };
    for (index, pair) in steps.windows(2).enumerate() {
        if let [previous, current] = pair
            && let (Some(previous), Some(current)) = (weight(previous), weight(current))
            && current <= previous
        {
            problems.push(Problem::new(
                path.key("stepWeights").index(index + 1),
                format!("must be greater than the previous step ({previous}), got {current}"),
            ));
        }
    }
}

fn check_metric_bounds(document: &Value, problems: &mut Vec<Problem>) {
    const METRICS: [&str; 3] = ["spec", "analysis", "metrics"];
    let Some(metrics) = lookup(document, &METRICS).and_then(Value::as_array) else {
        return;
    };
    for (index, metric) in metrics.iter().enumerate() {
        let name = metric
            .get("name")
            .and_then(|name| serde_json::from_value::<MetricName>(name.clone()).ok());
        let (Some(name), Some(range)) = (name, metric.get("thresholdRange").filter(|range| range.is_object())) else {
            continue;
        };
        let path = FieldPath::of(&METRICS).index(index).key("thresholdRange");
        let (bound, other) = match name {
            MetricName::RequestSuccessRate => ("min", "max"),
            MetricName::RequestDuration => ("max", "min"),
        };
        if present(range, other).is_some() {
            problems.push(Problem::new(path.key(other), format!("not allowed for {name}")));
        }
        let Some(value) = present(range, bound) else {
            problems.push(Problem::new(path.key(bound), format!("required for {name}")));
            continue;
        };
        let Some(number) = value.as_f64() else {
            continue;
        };
        let message = match name {
            MetricName::RequestSuccessRate if !(0.0..=100.0).contains(&number) => {
                format!("must be 0..=100 (a percentage), got {value}")
            }
            MetricName::RequestDuration if number <= 0.0 => {
                format!("must be greater than 0 (milliseconds), got {value}")
            }
            _ => continue,
        };
        problems.push(Problem::new(path.key(bound), message));
    }
}

/// Each custom metric reads from exactly one place, a query needs a Prometheus provider, and its range has a
/// bound.
fn check_custom_metrics(document: &Value, problems: &mut Vec<Problem>) {
    const CUSTOM: [&str; 3] = ["spec", "analysis", "customMetrics"];
    let Some(metrics) = lookup(document, &CUSTOM).and_then(Value::as_array) else {
        return;
    };
    let prometheus =
        lookup(document, &["spec", "analysis", "provider", "type"]).and_then(Value::as_str) == Some("prometheus");
    for (index, metric) in metrics.iter().enumerate().filter(|(_, m)| m.is_object()) {
        let path = FieldPath::of(&CUSTOM).index(index);
        match (present(metric, "query"), present(metric, "web")) {
            (Some(_), Some(_)) => problems.push(Problem::new(path.clone(), "set either query or web, not both")),
            (None, None) => problems.push(Problem::new(path.clone(), "set either query or web")),
            (Some(_), None) if !prometheus => problems.push(Problem::new(
                path.key("query"),
                "needs spec.analysis.provider of type prometheus to run against",
            )),
            _ => {}
        }
        if let Some(range) = metric.get("thresholdRange").filter(|r| r.is_object())
            && present(range, "min").is_none()
            && present(range, "max").is_none()
        {
            problems.push(Problem::new(path.key("thresholdRange"), "set min, max or both"));
        }
    }
}

/// The schema checks a duration's shape; whether it is a duration jiff can compute (units largest first, no
/// repeats, no overflow) and longer than zero is checked here.
fn check_durations(document: &Value, problems: &mut Vec<Problem>) {
    for keys in DURATION_FIELDS {
        if let Some(value) = lookup(document, keys) {
            check_duration(value, FieldPath::of(keys), problems);
        }
    }
}

/// A duration jiff can compute and longer than zero; other shapes are the schema's to report.
fn check_duration(value: &Value, path: FieldPath, problems: &mut Vec<Problem>) {
    let Some(text) = value.as_str() else {
        return;
    };
    let message = match text.parse::<Duration>() {
        Err(_) => expected(DURATION_EXPECTATION, value),
        Ok(duration) if duration.0.is_zero() => format!("must be greater than 0, got {value}"),
        Ok(_) => return,
    };
    problems.push(Problem::new(path, message));
}
