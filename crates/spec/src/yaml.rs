//! Reading the document: YAML (JSON being a subset) into a generic value that the schema can check.

use serde_json::{Number, Value};
use serde_saphyr::{SnippetMode, UserMessageFormatter};

use crate::errors::Problem;
use crate::path::FieldPath;

/// The document as a generic value, or the syntax error with its line and column.
pub(crate) fn load(text: &str) -> Result<Value, Problem> {
    let document: Value = serde_saphyr::from_str(text).map_err(|error| {
        let rendered = error.render_with_options(serde_saphyr::render_options! {
            formatter: &UserMessageFormatter,
            snippets: SnippetMode::Off,
        });
        Problem::new(FieldPath::root(), rendered)
    })?;
    Ok(integral_floats_as_integers(document))
}

/// JSON Schema counts `10.0` as an integer but serde does not fill a `u8` from it; writing such numbers as
/// integers makes the two agree, so a value the schema accepts always deserializes.
fn integral_floats_as_integers(value: Value) -> Value {
    match value {
        Value::Number(number) => Value::Number(as_integer(&number).unwrap_or(number)),
        Value::Array(items) => Value::Array(items.into_iter().map(integral_floats_as_integers).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, integral_floats_as_integers(value)))
                .collect(),
        ),
        other => other,
    }
}

fn as_integer(number: &Number) -> Option<Number> {
    let float = number.as_f64().filter(|_| number.is_f64())?;
    if float.fract() != 0.0 {
        return None;
    }
    // Casts saturate; the range check keeps only values the integer holds exactly.
    if (0.0..u64::MAX as f64).contains(&float) {
        Some(Number::from(float as u64))
    } else if (i64::MIN as f64..0.0).contains(&float) {
        Some(Number::from(float as i64))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_yaml_and_json() {
        assert_eq!(
            load("a: [1, x]\nb: {c: true}").unwrap(),
            json!({ "a": [1, "x"], "b": { "c": true } })
        );
        assert_eq!(load(r#"{"a": "b"}"#).unwrap(), json!({ "a": "b" }));
    }

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        assert_eq!(
            load("a: 10.0\nb: 10.5\nc: -3.0\nd: 1e300").unwrap(),
            json!({ "a": 10, "b": 10.5, "c": -3, "d": 1e300 })
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let problem = load("a: 1\na: 2\n").unwrap_err();
        assert_eq!(problem.path, FieldPath::root());
        assert!(problem.message.contains("line 2"), "{}", problem.message);
        assert!(problem.message.contains("column 1"), "{}", problem.message);
    }
}
