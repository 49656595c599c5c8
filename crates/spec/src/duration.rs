//! Durations as people write them in specs: `500ms`, `30s`, `1m30s`, `1h 30m`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A span of time, written in specs as whole numbers with units, largest unit first: `500ms`, `30s`,
/// `1m30s`, `1h 30m`. Serializes canonically (`1m 30s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// A string that is not a duration in the spec format.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("expected a duration like 30s or 1m30s, got {input:?}")]
pub struct InvalidDuration {
    /// The rejected text.
    pub input: String,
}

/// The unit spellings the spec accepts; all of them are spellings jiff's friendly format knows. Calendar units
/// (days and up) are left out on purpose: their length is not fixed.
const UNITS: [&str; 33] = [
    "hours",
    "hour",
    "hrs",
    "hr",
    "h", //
    "minutes",
    "minute",
    "mins",
    "min",
    "m", //
    "seconds",
    "second",
    "secs",
    "sec",
    "s", //
    "milliseconds",
    "millisecond",
    "msecs",
    "msec",
    "ms", //
    "microseconds",
    "microsecond",
    "usecs",
    "usec",
    "us",
    "µsecs",
    "µsec",
    "µs", //
    "nanoseconds",
    "nanosecond",
    "nsecs",
    "nsec",
    "ns",
];

/// The JSON Schema pattern for durations. It describes exactly the shape [`has_spec_shape`] accepts, so the
/// schema and the parser agree; unit order, repeats and overflow are left to jiff.
pub(crate) fn pattern() -> String {
    let units = UNITS.join("|");
    format!("^[0-9]+ *(?:{units})(?: *[0-9]+ *(?:{units}))*$")
}

/// Whole numbers, each followed by a unit, separated by optional spaces. jiff alone would also take ISO 8601
/// (`PT30S`), signs, `ago`, fractions and commas; the spec keeps one plain way to write a duration.
fn has_spec_shape(text: &str) -> bool {
    let mut rest = text;
    loop {
        let after_digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        if after_digits.len() == rest.len() {
            return false;
        }
        let unit_start = after_digits.trim_start_matches(' ');
        let after_unit = unit_start.trim_start_matches(char::is_alphabetic);
        let unit = &unit_start[..unit_start.len() - after_unit.len()];
        if !UNITS.contains(&unit) {
            return false;
        }
        if after_unit.is_empty() {
            return true;
        }
        rest = after_unit.trim_start_matches(' ');
    }
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration { input: text.to_owned() };
        if !has_spec_shape(text) {
            return Err(invalid());
        }
        let signed: SignedDuration = text.parse().map_err(|_| invalid())?;
        let duration = std::time::Duration::try_from(signed).map_err(|_| invalid())?;
        Ok(Self(duration))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        let components = [
            (seconds / 3600, "h"),
            (seconds / 60 % 60, "m"),
            (seconds % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from(nanos / 1_000 % 1_000), "us"),
            (u64::from(nanos % 1_000), "ns"),
        ];
        let mut written = false;
        for (amount, unit) in components.into_iter().filter(|(amount, _)| *amount > 0) {
            if written {
                f.write_str(" ")?;
            }
            write!(f, "{amount}{unit}")?;
            written = true;
        }
        if !written {
            f.write_str("0s")?;
        }
        Ok(())
    }
}

impl From<std::time::Duration> for Duration {
    fn from(duration: std::time::Duration) -> Self {
        Self(duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": pattern(),
            "description": "A duration: whole numbers with units (h, m, s, ms, us, ns), largest unit first, \
                            e.g. 500ms, 30s, 1m30s, 1h 30m.",
            "examples": ["30s", "1m 30s"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<std::time::Duration, InvalidDuration> {
        text.parse::<Duration>().map(|duration| duration.0)
    }

    #[test]
    fn parses_the_forms_users_write() {
        let secs = std::time::Duration::from_secs;
        assert_eq!(parse("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(secs(30)));
        assert_eq!(parse("1m30s"), Ok(secs(90)));
        assert_eq!(parse("1m 30s"), Ok(secs(90)));
        assert_eq!(parse("2h"), Ok(secs(7200)));
        assert_eq!(parse("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse("1 hour 5 minutes"), Ok(secs(3900)));
        assert_eq!(parse("0s"), Ok(secs(0)));
    }

    #[test]
    fn every_accepted_unit_is_one_jiff_understands() {
        for unit in UNITS {
            let text = format!("3{unit}");
            assert!(parse(&text).is_ok(), "{text} should parse");
        }
    }

    #[test]
    fn rejects_everything_but_the_plain_form() {
        for text in [
            "",
            "soon",
            "30",
            "s",
            "-30s",
            "+30s",
            "30s ago",
            "PT30S",
            "1.5h",
            "1h, 30m",
            " 30s",
            "30s ",
            "1d",
            "1 day",
            "2w",
            "1y",
            "30s 1m",
            "1m 1m",
            "30x",
            "1h\t30m",
            "99999999999999999999h",
        ] {
            assert_eq!(
                parse(text),
                Err(InvalidDuration { input: text.to_owned() }),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn displays_canonically_and_round_trips() {
        let cases = [
            (std::time::Duration::from_secs(90), "1m 30s"),
            (std::time::Duration::from_secs(30), "30s"),
            (std::time::Duration::from_secs(3600), "1h"),
            (std::time::Duration::from_millis(1500), "1s 500ms"),
            (std::time::Duration::ZERO, "0s"),
            (std::time::Duration::from_nanos(3_600_000_001_001), "1h 1us 1ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(Duration(duration).to_string(), text);
            assert_eq!(parse(text), Ok(duration));
        }
    }

    #[test]
    fn serializes_as_its_canonical_string() {
        let value = serde_json::to_value(Duration(std::time::Duration::from_secs(90))).unwrap();
        assert_eq!(value, serde_json::json!("1m 30s"));
        let back: Duration = serde_json::from_value(serde_json::json!("1m30s")).unwrap();
        assert_eq!(back.0, std::time::Duration::from_secs(90));
        let error = serde_json::from_value::<Duration>(serde_json::json!("soon")).unwrap_err();
        assert_eq!(error.to_string(), "expected a duration like 30s or 1m30s, got \"soon\"");
    }

    #[test]
    fn schema_pattern_accepts_exactly_what_the_parser_shapes_accept() {
        let schema = serde_json::json!({ "pattern": pattern() });
        for text in [
            "30s", "1m30s", "1 h 30 m", "5µs", "30", "30s ", "1.5h", "PT30S", "1d", "", "1h,30m",
        ] {
            let matches = jsonschema::is_valid(&schema, &serde_json::json!(text));
            assert_eq!(matches, has_spec_shape(text), "{text:?}");
        }
    }
}
