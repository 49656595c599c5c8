//! A tiny JSON path: the subset that picks one value, which is all a metric needs.
//!
//! Grammar: an optional `$` (the root), then segments `.name`, `[index]`, `["name"]` or `['name']`; the first
//! `.name` may drop its dot (`data.value`). So `$.data.result[0].value`, `a.b[0].c` and `$["odd.key"]`.
//! Wildcards, filters and slices select several values and are refused.

use std::fmt;

use serde_json::Value;
use thiserror::Error;

/// Why a path was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("JSON path {path:?}: {reason} at byte {at}")]
pub struct JsonPathError {
    /// The path given.
    pub path: String,
    /// Byte offset of the problem.
    pub at: usize,
    /// What was expected there.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A parsed path to one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonPath {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        let fail = |at: usize, reason: &str| JsonPathError {
            path: text.to_owned(),
            at,
            reason: reason.to_owned(),
        };
        let bytes = text.as_bytes();
        let mut segments = Vec::new();
        let mut i = usize::from(text.starts_with('$'));
        if text.is_empty() {
            return Err(fail(0, "empty path; expected `$` or a name"));
        }
        // A leading name without its dot.
        if i == 0 && bytes[0] != b'[' && bytes[0] != b'.' {
            let end = name_end(text, 0);
            segments.push(Segment::Key(text[..end].to_owned()));
            i = end;
        }
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let end = name_end(text, i + 1);
                    if end == i + 1 {
                        return Err(fail(i + 1, "expected a name after `.`"));
                    }
                    segments.push(Segment::Key(text[i + 1..end].to_owned()));
                    i = end;
                }
                b'[' => {
                    let (segment, next) = bracket(text, i + 1).map_err(|(at, reason)| fail(at, reason))?;
                    segments.push(segment);
                    i = next;
                }
                _ => return Err(fail(i, "expected `.` or `[`")),
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            segments,
        })
    }

    /// The value at this path, or `None` when a key or index is absent (or the value there is not an object or
    /// an array).
    pub fn read<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(value, |value, segment| match segment {
            Segment::Key(key) => value.as_object()?.get(key),
            Segment::Index(index) => value.as_array()?.get(*index),
        })
    }
}

/// Where a name starting at `start` ends: at the next `.` or `[`, or the end.
fn name_end(text: &str, start: usize) -> usize {
    text[start..]
        .find(['.', '['])
        .map_or(text.len(), |offset| start + offset)
}

/// The segment inside `[…]` starting at `start` (after the `[`), and the offset after the `]`.
fn bracket(text: &str, start: usize) -> Result<(Segment, usize), (usize, &'static str)> {
    let rest = &text[start..];
    let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        let close = rest.find(']').ok_or((start, "`[` is not closed by `]`"))?;
        let digits = &rest[..close];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err((start, "expected an index (digits) or a quoted name inside `[]`"));
        }
        let index = digits.parse().map_err(|_| (start, "index too large"))?;
        return Ok((Segment::Index(index), start + close + 1));
    };
    let mut key = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) if escaped == quote || escaped == '\\' => key.push(escaped),
                _ => return Err((start + offset, "expected `\\\\` or an escaped quote")),
            },
            c if c == quote => {
                let after = start + offset + c.len_utf8();
                if text[after..].starts_with(']') {
                    return Ok((Segment::Key(key), after + 1));
                }
                return Err((after, "expected `]` after the quoted name"));
            }
            c => key.push(c),
        }
    }
    Err((start, "the quoted name is not closed"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(path: &str, value: &Value) -> Option<Value> {
        JsonPath::parse(path).unwrap().read(value).cloned()
    }

    #[test]
    fn reads_keys_and_indexes_in_every_spelling() {
        let doc = json!({"data": {"value": 3.5, "items": [{"c": 1}, {"c": [10, 20]}]}, "odd.key": {"x y": true}});
        assert_eq!(read("$.data.value", &doc), Some(json!(3.5)));
        assert_eq!(read("data.value", &doc), Some(json!(3.5)));
        assert_eq!(read("data.items[0].c", &doc), Some(json!(1)));
        assert_eq!(read("$.data.items[1].c[1]", &doc), Some(json!(20)));
        assert_eq!(read(r#"$["odd.key"]['x y']"#, &doc), Some(json!(true)));
        assert_eq!(read("$['data'].value", &doc), Some(json!(3.5)));
        assert_eq!(read("$", &doc), Some(doc.clone()));
    }

    #[test]
    fn reads_arrays_at_the_root() {
        let doc = json!([[1, 2], [3, "4"]]);
        assert_eq!(read("$[1][1]", &doc), Some(json!("4")));
        assert_eq!(read("[0][0]", &doc), Some(json!(1)));
    }

    #[test]
    fn absent_keys_indexes_and_wrong_shapes_read_nothing() {
        let doc = json!({"a": {"b": [1]}, "n": null});
        assert_eq!(read("a.c", &doc), None);
        assert_eq!(read("a.b[1]", &doc), None);
        assert_eq!(read("a[0]", &doc), None, "an index into an object");
        assert_eq!(read("a.b.c", &doc), None, "a key into an array");
        assert_eq!(read("a.b[0].c", &doc), None, "a key into a number");
        assert_eq!(read("n", &doc), Some(Value::Null));
    }

    #[test]
    fn escaped_quotes_and_backslashes_in_bracket_names() {
        let doc = json!({"it's": 1, "a\\b": 2, "say \"hi\"": 3});
        assert_eq!(read(r"$['it\'s']", &doc), Some(json!(1)));
        assert_eq!(read(r#"$["a\\b"]"#, &doc), Some(json!(2)));
        assert_eq!(read(r#"$["say \"hi\""]"#, &doc), Some(json!(3)));
    }

    #[test]
    fn malformed_paths_say_where_and_why() {
        let cases = [
            ("", 0, "empty path; expected `$` or a name"),
            ("a..b", 2, "expected a name after `.`"),
            ("$.", 2, "expected a name after `.`"),
            ("$x", 1, "expected `.` or `[`"),
            ("a[0", 2, "`[` is not closed by `]`"),
            ("a[*]", 2, "expected an index (digits) or a quoted name inside `[]`"),
            ("a[-1]", 2, "expected an index (digits) or a quoted name inside `[]`"),
            ("a[1:2]", 2, "expected an index (digits) or a quoted name inside `[]`"),
            ("a[99999999999999999999999]", 2, "index too large"),
            ("a['b", 2, "the quoted name is not closed"),
            ("a['b'x]", 5, "expected `]` after the quoted name"),
            (r"a['\n']", 3, "expected `\\\\` or an escaped quote"),
        ];
        for (path, at, reason) in cases {
            let error = JsonPath::parse(path).unwrap_err();
            assert_eq!((error.at, error.reason.as_str()), (at, reason), "{path}");
        }
        assert_eq!(
            JsonPath::parse("a..b").unwrap_err().to_string(),
            r#"JSON path "a..b": expected a name after `.` at byte 2"#
        );
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(JsonPath::parse("$.a[0]").unwrap().to_string(), "$.a[0]");
    }
}
