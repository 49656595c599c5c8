//! Field names and the `ignore` rules that remove fields.
//!
//! A field is `status`, `headers.<lowercase name>`, `body` (a body compared byte-wise) or a JSON path into a
//! body, written `$.a.b[2].c`; a key that is not plain (letters, digits, `_`, `-`) is written `$["a key"]`. The
//! names a report shows parse back as `ignore` entries, so a noisy field can be pasted into the spec as is.

use http::HeaderName;
use serde_json::Value;

use crate::error::ShadowError;

/// The field of the status code.
pub const STATUS: &str = "status";
/// The field of a body that is not JSON on both sides, compared byte-wise.
pub const BODY: &str = "body";
/// The prefix of header fields.
pub const HEADERS_PREFIX: &str = "headers.";

/// One step into a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The field name of a JSON value reached by `steps` from the body's root.
pub(crate) fn json_field(steps: &[Step<'_>]) -> String {
    let mut text = String::from("$");
    for step in steps {
        match step {
            Step::Key(key) if is_plain(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Key(key) => {
                text.push('[');
                // `Value`'s Display is JSON, so the key comes out quoted and escaped.
                text.push_str(&Value::String((*key).to_owned()).to_string());
                text.push(']');
            }
            Step::Index(index) => {
                text.push('[');
                text.push_str(&index.to_string());
                text.push(']');
            }
        }
    }
    text
}

/// The field name of a header.
pub(crate) fn header_field(name: &HeaderName) -> String {
    // `HeaderName` is lowercase already.
    format!("{HEADERS_PREFIX}{name}")
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// One step of an `ignore` path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Key(String),
    Index(usize),
    /// `[*]`: any array index.
    AnyIndex,
}

impl Pattern {
    fn matches(&self, step: &Step<'_>) -> bool {
        match (self, step) {
            (Pattern::Key(want), Step::Key(key)) => want == key,
            (Pattern::Index(want), Step::Index(index)) => want == index,
            (Pattern::AnyIndex, Step::Index(_)) => true,
            _ => false,
        }
    }
}

/// The fields an `ignore` list removes, parsed once.
///
/// A JSON path removes the value it names and everything below it (`$.meta` removes `$.meta.time`), so
/// a whole noisy object can be ignored at once. `[*]` matches any array index. Header names are matched
/// case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    status: bool,
    body: bool,
    headers: Vec<HeaderName>,
    json: Vec<Vec<Pattern>>,
}

impl Ignore {
    /// Parses a spec's `ignore` list.
    pub fn parse(entries: &[String]) -> Result<Self, ShadowError> {
        let mut ignore = Ignore::default();
        for entry in entries {
            let fail = |reason: String| ShadowError::Ignore {
                entry: entry.clone(),
                reason,
            };
            if entry == STATUS {
                ignore.status = true;
            } else if entry == BODY {
                ignore.body = true;
            } else if let Some(name) = entry.strip_prefix(HEADERS_PREFIX) {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| fail(format!("{name:?} is not an HTTP header name")))?;
                ignore.headers.push(name);
            } else if entry.starts_with('$') {
                ignore.json.push(parse_path(entry).map_err(fail)?);
            } else {
                return Err(fail(
                    "expected a JSON path (`$.a.b`, `$.items[*].id`), `headers.<name>`, `status` or `body`".to_owned(),
                ));
            }
        }
        Ok(ignore)
    }

    /// Whether the status is ignored.
    pub(crate) fn status(&self) -> bool {
        self.status
    }

    /// Whether the whole body is ignored.
    pub(crate) fn body(&self) -> bool {
        self.body
    }

    /// Whether a header is ignored.
    pub(crate) fn header(&self, name: &HeaderName) -> bool {
        self.headers.contains(name)
    }

    /// Whether the JSON value at `steps`, and so everything below it, is ignored.
    pub(crate) fn json(&self, steps: &[Step<'_>]) -> bool {
        self.json.iter().any(|pattern| {
            pattern.len() <= steps.len() && pattern.iter().zip(steps).all(|(pattern, step)| pattern.matches(step))
        })
    }
}

/// Parses `$` followed by `.name`, `[index]`, `[*]` or `["name"]` steps.
fn parse_path(text: &str) -> Result<Vec<Pattern>, String> {
    let mut patterns = Vec::new();
    let mut rest = text.strip_prefix('$').ok_or("a JSON path starts with `$`")?;
    while !rest.is_empty() {
        let at = text.len() - rest.len();
        if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let name = &after_dot[..end];
            if name.is_empty() || name.contains(']') {
                return Err(format!("expected a name after `.` at byte {at}"));
            }
            patterns.push(Pattern::Key(name.to_owned()));
            rest = &after_dot[end..];
        } else if let Some(inside) = rest.strip_prefix('[') {
            let (pattern, after) = parse_bracket(inside)
                .ok_or_else(|| format!("expected `[<index>]`, `[*]` or `[\"<name>\"]` at byte {at}"))?;
            patterns.push(pattern);
            rest = after;
        } else {
            return Err(format!("expected `.` or `[` at byte {at}"));
        }
    }
    Ok(patterns)
}

/// Parses what follows a `[`, up to and including its `]`.
fn parse_bracket(inside: &str) -> Option<(Pattern, &str)> {
    if let Some(after) = inside.strip_prefix("*]") {
        return Some((Pattern::AnyIndex, after));
    }
    if inside.starts_with('"') {
        let end = closing_quote(inside)?;
        let name: String = serde_json::from_str(&inside[..=end]).ok()?;
        let after = inside[end + 1..].strip_prefix(']')?;
        return Some((Pattern::Key(name), after));
    }
    let end = inside.find(']')?;
    let digits = &inside[..end];
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((Pattern::Index(digits.parse().ok()?), &inside[end + 1..]))
}

/// The byte offset of the quote closing the JSON string `quoted` starts with.
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    for (offset, byte) in quoted.bytes().enumerate().skip(1) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(offset),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ignores(entry: &str, steps: &[Step<'_>]) -> bool {
        match Ignore::parse(&[entry.to_owned()]) {
            Ok(ignore) => ignore.json(steps),
            Err(error) => panic!("{entry}: {error}"),
        }
    }

    #[test]
    fn paths_are_written_with_dots_and_brackets() {
        let steps = [Step::Key("a"), Step::Key("b"), Step::Index(2), Step::Key("c")];
        assert_eq!(json_field(&steps), "$.a.b[2].c");
        assert_eq!(json_field(&[]), "$");
        assert_eq!(json_field(&[Step::Key("odd key.\"x\"")]), r#"$["odd key.\"x\""]"#);
        assert_eq!(json_field(&[Step::Key("")]), r#"$[""]"#);
    }

    #[test]
    fn a_path_ignores_its_value_and_everything_below() {
        assert!(ignores("$.meta", &[Step::Key("meta")]));
        assert!(ignores("$.meta", &[Step::Key("meta"), Step::Key("time")]));
        assert!(!ignores("$.meta", &[Step::Key("metadata")]));
        assert!(!ignores("$.meta.time", &[Step::Key("meta")]));
        assert!(ignores("$", &[Step::Key("anything")]));
    }

    #[test]
    fn a_wildcard_matches_any_index_and_only_indices() {
        let id_of = |index| [Step::Key("items"), Step::Index(index), Step::Key("id")];
        assert!(ignores("$.items[*].id", &id_of(0)));
        assert!(ignores("$.items[*].id", &id_of(41)));
        assert!(!ignores(
            "$.items[*].id",
            &[Step::Key("items"), Step::Index(1), Step::Key("name")]
        ));
        assert!(!ignores("$.items[*]", &[Step::Key("items"), Step::Key("0")]));
        assert!(ignores("$.items[3]", &id_of(3)));
        assert!(!ignores("$.items[3]", &id_of(4)));
    }

    #[test]
    fn quoted_names_take_any_key() {
        assert!(ignores(r#"$["odd key"].x"#, &[Step::Key("odd key"), Step::Key("x")]));
        assert!(ignores(r#"$["a\"]b"]"#, &[Step::Key("a\"]b")]));
    }

    #[test]
    fn malformed_entries_are_refused_naming_the_entry() {
        for entry in [
            "total",
            "$.",
            "$..a",
            "$[",
            "$[x]",
            "$[-1]",
            "$[\"open]",
            "$a",
            "headers.bad name",
            "$.a]",
        ] {
            let error = Ignore::parse(&[entry.to_owned()]).expect_err(entry);
            assert!(error.to_string().contains(&format!("{entry:?}")), "{error}");
        }
    }

    #[test]
    fn headers_are_matched_case_insensitively() {
        let ignore = Ignore::parse(&["headers.X-Request-Id".to_owned()]).expect("valid");
        assert!(ignore.header(&HeaderName::from_static("x-request-id")));
        assert!(!ignore.header(&HeaderName::from_static("x-request")));
    }

    proptest! {
        #[test]
        fn every_reported_path_parses_back_to_itself(
            steps in proptest::collection::vec(prop_oneof![
                any::<String>().prop_map(Ok),
                (0_usize..1_000_000).prop_map(Err),
            ], 0..6)
        ) {
            let steps: Vec<Step<'_>> = steps
                .iter()
                .map(|step| match step {
                    Ok(key) => Step::Key(key),
                    Err(index) => Step::Index(*index),
                })
                .collect();
            let field = json_field(&steps);
            prop_assert!(ignores(&field, &steps), "{field}");
        }

        #[test]
        fn parsing_any_entry_does_not_panic(entry in any::<String>()) {
            let _ = Ignore::parse(&[entry]);
        }
    }
}
