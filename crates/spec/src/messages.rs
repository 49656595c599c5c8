//! Turns JSON Schema validation errors into messages a person writing YAML understands.
//!
//! The validator's own messages talk about schemas ("is not valid under any of the given schemas"); here each
//! error kind is rephrased from the part of the schema that failed, so the schema stays the one place where
//! fields, types and ranges are declared.

use jsonschema::error::{ValidationError, ValidationErrorKind};
use serde_json::Value;

use crate::duration;
use crate::errors::Problem;
use crate::path::FieldPath;
use crate::syntax::{ENV_KEY_PATTERN, HTTP_PATH_PATTERN, NAME_PATTERN, SOCKET_ADDRESS_FORMAT};

/// How a duration is described when one is expected; shared with the cross-field rules so that both phases
/// word (and so deduplicate) the same problem identically.
pub(crate) const DURATION_EXPECTATION: &str = "a duration like 30s or 1m30s";

/// The problems one validation error stands for: usually one, one per field for unknown fields.
pub(crate) fn describe(error: &ValidationError<'_>, schema: &Value, document: &Value) -> Vec<Problem> {
    let path = field_path(document, error.instance_path().as_str());
    let subschema = failed_subschema(schema, error.schema_path().as_str());
    let instance = error.instance().as_ref();
    let message = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let expected = property_names(subschema).join(", ");
            return unexpected
                .iter()
                .map(|field| Problem::new(path.key(field), format!("unknown field (expected one of: {expected})")))
                .collect();
        }
        ValidationErrorKind::Required { property } => {
            return vec![Problem::new(path.key(&plain(property)), "required")];
        }
        ValidationErrorKind::PropertyNames { error } => return describe(error, schema, document),
        ValidationErrorKind::Type { .. }
        | ValidationErrorKind::Constant { .. }
        | ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::Format { .. } => expected(&expectation(subschema), instance),
        ValidationErrorKind::Pattern { pattern } => pattern_message(pattern, instance),
        ValidationErrorKind::Minimum { .. } | ValidationErrorKind::Maximum { .. } => range_message(subschema, instance),
        ValidationErrorKind::MinItems { limit: 1 } => "must not be empty".to_owned(),
        ValidationErrorKind::MaxLength { limit } => {
            let length = instance.as_str().map_or(0, |text| text.chars().count());
            format!("must be at most {limit} characters, got {length}")
        }
        ValidationErrorKind::MinProperties { .. } | ValidationErrorKind::MaxProperties { .. } => {
            format!("must set exactly one of: {}", property_names(subschema).join(", "))
        }
        _ => error.to_string(),
    };
    vec![Problem::new(path, message)]
}

/// `expected <what>, got <value>`: the wording for every "wrong kind of value" problem.
pub(crate) fn expected(what: &str, instance: &Value) -> String {
    format!("expected {what}, got {}", got(instance))
}

/// Walks the document along a JSON pointer so that list indexes render as `[i]` and map keys that look like
/// numbers stay keys.
fn field_path(document: &Value, pointer: &str) -> FieldPath {
    let mut path = FieldPath::root();
    let mut current = Some(document);
    for escaped in pointer.split('/').skip(1) {
        let token = escaped.replace("~1", "/").replace("~0", "~");
        match (current, token.parse::<usize>()) {
            (Some(Value::Array(items)), Ok(index)) => {
                path = path.index(index);
                current = items.get(index);
            }
            _ => {
                current = current.and_then(|value| value.get(&token));
                path = path.key(&token);
            }
        }
    }
    path
}

/// The schema object whose keyword failed. Subschemas are inlined (see `schema.rs`), so the keyword's
/// location is a plain pointer into the root schema.
fn failed_subschema<'a>(schema: &'a Value, keyword_pointer: &str) -> &'a Value {
    keyword_pointer
        .rsplit_once('/')
        .and_then(|(parent, _keyword)| schema.pointer(parent))
        .unwrap_or(&Value::Null)
}

/// Sorted, so the list reads the same whatever order the schema's map keeps.
fn property_names(subschema: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = subschema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// What a field holds, in words, from the schema that describes it.
fn expectation(subschema: &Value) -> String {
    if let Some(constant) = subschema.get("const") {
        return plain(constant);
    }
    if let Some(constants) = one_of_constants(subschema) {
        return format!("one of: {}", constants.join(", "));
    }
    if subschema.get("format").and_then(Value::as_str) == Some(SOCKET_ADDRESS_FORMAT) {
        return "a socket address like 127.0.0.1:8080".to_owned();
    }
    if subschema.get("pattern").and_then(Value::as_str) == Some(duration::pattern().as_str()) {
        return DURATION_EXPECTATION.to_owned();
    }
    let types: Vec<&str> = match subschema.get("type") {
        Some(Value::String(single)) => vec![single.as_str()],
        Some(Value::Array(several)) => several.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let described: Vec<&str> = types.into_iter().filter_map(type_in_words).collect();
    if described.is_empty() {
        "a different value".to_owned()
    } else {
        described.join(" or ")
    }
}

/// Schemars describes a documented unit enum as a `oneOf` of constants, one per variant with its doc.
fn one_of_constants(subschema: &Value) -> Option<Vec<String>> {
    let branches = subschema.get("oneOf")?.as_array()?;
    branches.iter().map(|branch| branch.get("const").map(plain)).collect()
}

/// `null` is left out: optional fields allow it, but nobody means to write it.
fn type_in_words(json_type: &str) -> Option<&'static str> {
    match json_type {
        "string" => Some("a string"),
        "integer" => Some("an integer"),
        "number" => Some("a number"),
        "boolean" => Some("true or false"),
        "array" => Some("a list"),
        "object" => Some("a map"),
        _ => None,
    }
}

fn pattern_message(pattern: &str, instance: &Value) -> String {
    let got = got(instance);
    if pattern == NAME_PATTERN {
        format!("must be lowercase letters, digits and '-', starting and ending with a letter or digit, got {got}")
    } else if pattern == HTTP_PATH_PATTERN {
        format!("must be a path starting with '/', got {got}")
    } else if pattern == ENV_KEY_PATTERN {
        format!("variable names must be non-empty without '=' or NUL, got {got}")
    } else if pattern == duration::pattern() {
        expected(DURATION_EXPECTATION, instance)
    } else {
        format!("must match {pattern}, got {got}")
    }
}

fn range_message(subschema: &Value, instance: &Value) -> String {
    let got = got(instance);
    match (subschema.get("minimum"), subschema.get("maximum")) {
        (Some(min), Some(max)) => format!("must be {min}..={max}, got {got}"),
        (Some(min), None) => format!("must be at least {min}, got {got}"),
        (None, Some(max)) => format!("must be at most {max}, got {got}"),
        (None, None) => format!("is out of range, got {got}"),
    }
}

/// A value as the user wrote it: strings quoted, containers named rather than dumped.
fn got(instance: &Value) -> String {
    match instance {
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a map".to_owned(),
        scalar => scalar.to_string(),
    }
}

/// A schema value as text, without JSON quotes around strings.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_indexes_and_numeric_keys_are_told_apart() {
        let document = json!({ "metrics": [{ "env": { "0": "x" } }] });
        assert_eq!(
            field_path(&document, "/metrics/0/env/0").to_string(),
            "metrics[0].env.0"
        );
        assert_eq!(field_path(&document, "/a~1b/c~0d").to_string(), "a/b.c~d");
        assert_eq!(field_path(&document, "").to_string(), "");
    }

    #[test]
    fn values_are_shown_as_written() {
        assert_eq!(got(&json!("localhost")), "\"localhost\"");
        assert_eq!(got(&json!(5)), "5");
        assert_eq!(got(&json!([1])), "a list");
        assert_eq!(got(&json!({ "a": 1 })), "a map");
        assert_eq!(got(&Value::Null), "null");
    }

    #[test]
    fn expectations_read_optional_types_and_documented_enums() {
        assert_eq!(expectation(&json!({ "type": ["integer", "null"] })), "an integer");
        let documented_enum = json!({ "oneOf": [{ "const": "rollback", "description": "..." }, { "const": "hold" }] });
        assert_eq!(expectation(&documented_enum), "one of: rollback, hold");
    }
}
