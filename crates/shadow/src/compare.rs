//! Comparing two answers to the same request, field by field. Pure: no I/O, and no input makes it panic.
//!
//! The fields compared are the status, `Content-Type` and the configured headers (all of a header's values,
//! in order; absent on one side counts as a difference), and the body: when both bodies parse as JSON, each
//! value that differs, by its path (a key missing on one side, an array index past the other's end and a
//! change of type each count, at the highest path where the two differ); otherwise the bodies byte for byte,
//! as the one field `body`. A body longer than `maxBodyBytes` on either side is not compared at all (the
//! shadow listener never gets that far: it skips such requests and counts them).

use std::io;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode, header};
use serde_json::Value;
use sluice_spec::Shadow;

use crate::error::ShadowError;
use crate::field::{self, Ignore, Step};

/// At most this many differences are listed per comparison; a body that differs in more places differs
/// anyway, and the cap keeps a large array that differs everywhere from costing megabytes of field names.
pub const MAX_DIFFERENCES: usize = 1_000;

/// Values in examples are cut to this many characters.
const VALUE_CHARS: usize = 60;

/// What a client of the service sees of one answer.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// One field that differs, with each side's value as a short string for examples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The field's name (`status`, `headers.etag`, `$.items[2].id`, `body`).
    pub field: String,
    /// The value in the answer compared against (the primary's), or `(missing)`.
    pub expected: String,
    /// The value in the other answer, or `(missing)`.
    pub actual: String,
}

/// What is compared and what is not, built once from a [`Shadow`] spec.
#[derive(Clone, Debug)]
pub struct CompareSettings {
    /// `Content-Type` first, then the configured headers, without repeats.
    headers: Vec<HeaderName>,
    methods: Vec<Method>,
    ignore: Ignore,
    max_body_bytes: u64,
}

impl CompareSettings {
    /// Reads the fields to compare from a shadow stage's spec; refuses malformed header names, methods and
    /// `ignore` entries.
    pub fn new(shadow: &Shadow) -> Result<Self, ShadowError> {
        let mut headers = vec![header::CONTENT_TYPE];
        for name in &shadow.headers {
            let parsed =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| ShadowError::Header { name: name.clone() })?;
            if !headers.contains(&parsed) {
                headers.push(parsed);
            }
        }
        let methods = shadow
            .methods
            .iter()
            .map(|method| {
                Method::from_bytes(method.as_bytes()).map_err(|_| ShadowError::Method { method: method.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(CompareSettings {
            headers,
            methods,
            ignore: Ignore::parse(&shadow.ignore)?,
            max_body_bytes: shadow.max_body_bytes,
        })
    }

    /// The largest body, request or answer, that is compared.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// Whether requests with this method are shadowed.
    pub fn shadows(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }
}

/// The fields in which `other` differs from `expected`, sorted by name, at most [`MAX_DIFFERENCES`].
pub fn compare(expected: &Answer, other: &Answer, settings: &CompareSettings) -> Vec<Difference> {
    let mut found = Found::default();
    if !settings.ignore.status() && expected.status != other.status {
        found.push(
            field::STATUS.to_owned(),
            expected.status.as_u16().to_string(),
            other.status.as_u16().to_string(),
        );
    }
    for name in &settings.headers {
        if settings.ignore.header(name) {
            continue;
        }
        let left: Vec<&[u8]> = expected
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.as_bytes())
            .collect();
        let right: Vec<&[u8]> = other
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.as_bytes())
            .collect();
        if left != right {
            found.push(field::header_field(name), header_text(&left), header_text(&right));
        }
    }
    if !settings.ignore.body() {
        compare_bodies(&expected.body, &other.body, settings, &mut found);
    }
    let mut differences = found.differences;
    differences.sort_by(|left, right| left.field.cmp(&right.field));
    differences
}

/// Differences collected so far, up to the cap.
#[derive(Default)]
struct Found {
    differences: Vec<Difference>,
}

impl Found {
    fn full(&self) -> bool {
        self.differences.len() >= MAX_DIFFERENCES
    }

    fn push(&mut self, field: String, expected: String, actual: String) {
        if !self.full() {
            self.differences.push(Difference {
                field,
                expected,
                actual,
            });
        }
    }
}

fn compare_bodies(expected: &Bytes, other: &Bytes, settings: &CompareSettings, found: &mut Found) {
    let max = settings.max_body_bytes;
    if expected.len() as u64 > max || other.len() as u64 > max {
        return;
    }
    if expected == other {
        return;
    }
    // serde_json refuses nesting deeper than 128, so the walk below never recurses deeper than that.
    match (
        serde_json::from_slice::<Value>(expected),
        serde_json::from_slice::<Value>(other),
    ) {
        (Ok(left), Ok(right)) => walk(Some(&left), Some(&right), &mut Vec::new(), &settings.ignore, found),
        _ => found.push(field::BODY.to_owned(), body_text(expected), body_text(other)),
    }
}

fn walk<'a>(
    expected: Option<&'a Value>,
    other: Option<&'a Value>,
    steps: &mut Vec<Step<'a>>,
    ignore: &Ignore,
    found: &mut Found,
) {
    if found.full() || ignore.json(steps) {
        return;
    }
    match (expected, other) {
        (Some(Value::Object(left)), Some(Value::Object(right))) => {
            let only_right = right.keys().filter(|key| !left.contains_key(*key));
            for key in left.keys().chain(only_right) {
                steps.push(Step::Key(key));
                walk(left.get(key), right.get(key), steps, ignore, found);
                steps.pop();
            }
        }
        (Some(Value::Array(left)), Some(Value::Array(right))) => {
            for index in 0..left.len().max(right.len()) {
                steps.push(Step::Index(index));
                walk(left.get(index), right.get(index), steps, ignore, found);
                steps.pop();
            }
        }
        (left, right) if left == right => {}
        (left, right) => found.push(field::json_field(steps), json_text(left), json_text(right)),
    }
}

const MISSING: &str = "(missing)";

fn header_text(values: &[&[u8]]) -> String {
    if values.is_empty() {
        return MISSING.to_owned();
    }
    let joined: Vec<u8> = values.join(&b", "[..]);
    short(&String::from_utf8_lossy(&joined))
}

fn body_text(body: &[u8]) -> String {
    // Enough bytes for the preview even if every character takes four.
    let preview = String::from_utf8_lossy(&body[..body.len().min(VALUE_CHARS * 4)]);
    format!("{} ({} bytes)", short(&preview), body.len())
}

fn json_text(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return MISSING.to_owned();
    };
    // A large object or array is serialised only as far as the example shows.
    let mut buffer = Capped(Vec::new());
    let complete = serde_json::to_writer(&mut buffer, value).is_ok();
    let text = String::from_utf8_lossy(&buffer.0);
    let text = short(&text);
    if complete || text.ends_with('…') {
        text
    } else {
        format!("{text}…")
    }
}

/// A writer that refuses bytes past what an example shows.
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = (VALUE_CHARS * 4 + 4).saturating_sub(self.0.len());
        if room == 0 {
            return Err(io::Error::other("example is long enough"));
        }
        let taken = bytes.len().min(room);
        self.0.extend_from_slice(&bytes[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `text` cut to [`VALUE_CHARS`] characters, with `…` when cut.
pub(crate) fn short(text: &str) -> String {
    match text.char_indices().nth(VALUE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
