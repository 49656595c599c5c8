//! Durations as people type them on a command line (`5ms`, `1.5s`), without pulling in a crate for
//! it.

use std::time::Duration;

/// Why a duration argument was not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseDurationError {
    /// The text has no unit, or one this parser does not know.
    #[error("duration {text:?} needs a unit: ns, us, ms, s or m (for example `5ms`)")]
    MissingUnit {
        /// The text as given.
        text: String,
    },
    /// The part before the unit is not a non-negative number, or the result does not fit a
    /// `Duration`.
    #[error("duration {text:?} is not a non-negative number followed by a unit")]
    InvalidNumber {
        /// The text as given.
        text: String,
    },
}

/// Nanoseconds per unit, two-letter suffixes first so `ms` is not read as `s`.
const UNITS: [(&str, u64); 5] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
];

/// Parses `<number><unit>` with unit `ns`, `us`, `ms`, `s` or `m`; a plain `0` is accepted too.
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, nanos_per_unit) = UNITS
        .iter()
        .find_map(|(suffix, nanos)| trimmed.strip_suffix(suffix).map(|number| (number.trim(), *nanos)))
        .ok_or_else(|| ParseDurationError::MissingUnit { text: text.to_owned() })?;
    let invalid = || ParseDurationError::InvalidNumber { text: text.to_owned() };
    // Whole numbers stay in integers so `5ms` is exactly five milliseconds, not a float's neighbour
    // of it.
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(nanos_per_unit)
            .map(Duration::from_nanos)
            .ok_or_else(invalid);
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = value * nanos_per_unit as f64 / 1e9;
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms_parse() {
        assert_eq!(parse_duration("5ms"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn missing_units_and_bad_numbers_are_explained() {
        assert!(matches!(
            parse_duration("5"),
            Err(ParseDurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5ms"),
            Err(ParseDurationError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_duration("fast ms"),
            Err(ParseDurationError::InvalidNumber { .. })
        ));
        let message = parse_duration("5h").unwrap_err().to_string();
        assert!(message.contains("needs a unit"), "{message}");
    }
}
