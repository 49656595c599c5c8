//! Rules on the release path's fields: stages, blue/green and A/B settings, webhooks and alerts.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{check_duration, lookup, present};
use crate::errors::Problem;
use crate::path::FieldPath;

/// All problems in the stages, the non-canary strategies, the webhooks and the alerts.
pub(super) fn check(document: &Value, problems: &mut Vec<Problem>) {
    check_ab_test(document, problems);
    check_blue_green(document, problems);
    check_shadow(document, problems);
    check_webhooks(document, problems);
    check_alerts(document, problems);
}

fn check_ab_test(document: &Value, problems: &mut Vec<Problem>) {
    const MATCH: [&str; 4] = ["spec", "strategy", "abTest", "match"];
    let Some(rules) = lookup(document, &MATCH).and_then(Value::as_array) else {
        return;
    };
    for (index, rule) in rules.iter().enumerate().filter(|(_, r)| r.is_object()) {
        let path = FieldPath::of(&MATCH).index(index);
        let conditions: usize = ["headers", "cookies"]
            .iter()
            .filter_map(|key| present(rule, key).and_then(Value::as_object))
            .map(|map| map.len())
            .sum();
        if conditions == 0 {
            problems.push(Problem::new(
                path.clone(),
                "needs at least one header or cookie to match, or it would send every request to the candidate",
            ));
        }
        for key in ["headers", "cookies"] {
            let Some(map) = present(rule, key).and_then(Value::as_object) else {
                continue;
            };
            for (name, matcher) in map.iter().filter(|(_, m)| m.is_object()) {
                check_string_match(matcher, path.key(key).key(name), problems);
            }
        }
    }
}

fn check_string_match(matcher: &Value, path: FieldPath, problems: &mut Vec<Problem>) {
    match (present(matcher, "exact"), present(matcher, "regex")) {
        (Some(_), Some(_)) | (None, None) => problems.push(Problem::new(path, "set exactly one of exact or regex")),
        (None, Some(pattern)) => {
            if let Some(Err(error)) = pattern.as_str().map(regex::Regex::new) {
                problems.push(Problem::new(
                    path.key("regex"),
                    format!("must be a valid regular expression: {error}"),
                ));
            }
        }
        (Some(_), None) => {}
    }
}

fn check_blue_green(document: &Value, problems: &mut Vec<Problem>) {
    const PREVIEW: [&str; 4] = ["spec", "strategy", "blueGreen", "previewListen"];
    let (Some(preview), Some(listen)) = (
        lookup(document, &PREVIEW).and_then(Value::as_str),
        lookup(document, &["spec", "listen"]).and_then(Value::as_str),
    ) else {
        return;
    };
    if preview == listen {
        problems.push(Problem::new(
            FieldPath::of(&PREVIEW),
            format!("must differ from spec.listen ({listen}): users would reach the preview"),
        ));
    }
}

fn check_shadow(document: &Value, problems: &mut Vec<Problem>) {
    const IGNORE: [&str; 4] = ["spec", "stages", "shadow", "ignore"];
    let Some(fields) = lookup(document, &IGNORE).and_then(Value::as_array) else {
        return;
    };
    for (index, field) in fields.iter().enumerate() {
        let Some(text) = field.as_str() else { continue };
        let header = text.strip_prefix("headers.").is_some_and(|name| !name.is_empty());
        if !header && !text.starts_with('$') {
            problems.push(Problem::new(
                FieldPath::of(&IGNORE).index(index),
                format!("expected a JSON path into the body ($.field) or headers.<name>, got \"{text}\""),
            ));
        }
    }
}

fn check_webhooks(document: &Value, problems: &mut Vec<Problem>) {
    const WEBHOOKS: [&str; 2] = ["spec", "webhooks"];
    let Some(hooks) = lookup(document, &WEBHOOKS).and_then(Value::as_array) else {
        return;
    };
    let mut names = BTreeSet::new();
    for (index, hook) in hooks.iter().enumerate().filter(|(_, h)| h.is_object()) {
        let path = FieldPath::of(&WEBHOOKS).index(index);
        if let Some(name) = hook.get("name").and_then(Value::as_str)
            && !names.insert(name)
        {
            problems.push(Problem::new(
                path.key("name"),
                format!("must be unique among the webhooks, \"{name}\" is used twice"),
            ));
        }
        if let Some(timeout) = hook.get("timeout") {
            check_duration(timeout, path.key("timeout"), problems);
        }
        if let Some(secret) = present(hook, "secretFrom") {
            check_secret(secret, path.key("secretFrom"), problems);
        }
    }
}

fn check_alerts(document: &Value, problems: &mut Vec<Problem>) {
    const ALERTS: [&str; 2] = ["spec", "alerts"];
    let Some(alerts) = lookup(document, &ALERTS).and_then(Value::as_array) else {
        return;
    };
    for (index, alert) in alerts.iter().enumerate() {
        if let Some(url) = present(alert, "urlFrom") {
            check_secret(url, FieldPath::of(&ALERTS).index(index).key("urlFrom"), problems);
        }
    }
}

fn check_secret(secret: &Value, path: FieldPath, problems: &mut Vec<Problem>) {
    if secret.is_object() && present(secret, "env").is_some() == present(secret, "file").is_some() {
        problems.push(Problem::new(path, "set exactly one of env or file"));
    }
}
