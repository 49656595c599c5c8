//! What one revision of the demo service looks like: its name, its latency, its error rate (and which methods
//! it applies to) and its items' prices.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;

use super::parse_duration;

/// One revision of the demo service, e.g.
/// `sluice demo-app --listen 127.0.0.1:PORT --revision v3 --error-rate 0.05 --latency 5ms`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct AppConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Revision name, echoed in every response's `x-revision` header and in the greeting.
    #[arg(long)]
    pub revision: String,
    /// Fraction of requests (other than `/healthz`) answered with 500, from 0.0 to 1.0, spread
    /// evenly. With `--fail-methods`, a fraction of the requests with those methods only.
    #[arg(long, default_value_t = 0.0, value_parser = parse_error_rate)]
    pub error_rate: f64,
    /// Methods `--error-rate` applies to, comma-separated (e.g. `POST` or `POST,PUT`); every method when
    /// absent. A revision failing only non-idempotent requests looks healthy to a shadow comparison, which
    /// mirrors only idempotent ones.
    #[arg(long, value_delimiter = ',', value_parser = parse_method)]
    pub fail_methods: Vec<Method>,
    /// Percentage by which every item's `price` differs from the baseline (`5` is 5% dearer, `-5` 5%
    /// cheaper): the kind of real change a shadow comparison has to catch.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true, value_parser = parse_price_change)]
    pub price_change: f64,
    /// Latency added to every request except `/healthz`, e.g. `5ms`.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub latency: Duration,
    /// Width of a deterministic pseudo-random spread added on top of `latency`.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub latency_jitter: Duration,
}

/// An error rate outside `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("error rate must be between 0 and 1 (a fraction, 0.05 for 5%), got {rate}")]
pub struct InvalidErrorRate {
    /// The rejected rate.
    pub rate: f64,
}

/// A price change that is not a finite percentage above -100.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("price change must be a percentage above -100 (5 for 5% dearer), got {percent}")]
pub struct InvalidPriceChange {
    /// The rejected percentage.
    pub percent: f64,
}

impl InvalidPriceChange {
    /// Accepts finite percentages above -100, so every price stays a positive number.
    pub(crate) fn check(percent: f64) -> Result<f64, Self> {
        if percent.is_finite() && percent > -100.0 {
            Ok(percent)
        } else {
            Err(Self { percent })
        }
    }
}

/// A configuration the demo app cannot serve.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidAppConfig {
    /// The error rate is not a fraction.
    #[error(transparent)]
    ErrorRate(#[from] InvalidErrorRate),
    /// The price change is not a finite percentage above -100.
    #[error(transparent)]
    PriceChange(#[from] InvalidPriceChange),
    /// The revision name cannot travel in the `x-revision` header.
    #[error("revision {revision:?} must be non-empty visible ASCII to fit in the x-revision header")]
    Revision {
        /// The rejected name.
        revision: String,
    },
}

/// Why clap rejected `--error-rate`.
#[derive(Debug, thiserror::Error)]
enum ErrorRateArgError {
    #[error("{text:?} is not a number")]
    NotANumber { text: String },
    #[error(transparent)]
    OutOfRange(#[from] InvalidErrorRate),
}

/// Lets clap reject a bad `--error-rate` with the same message a programmatic caller gets.
fn parse_error_rate(text: &str) -> Result<f64, ErrorRateArgError> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| ErrorRateArgError::NotANumber { text: text.to_owned() })?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(InvalidErrorRate { rate }.into())
    }
}

/// Why clap rejected `--price-change`.
#[derive(Debug, thiserror::Error)]
enum PriceChangeArgError {
    #[error("{text:?} is not a number")]
    NotANumber { text: String },
    #[error(transparent)]
    OutOfRange(#[from] InvalidPriceChange),
}

fn parse_price_change(text: &str) -> Result<f64, PriceChangeArgError> {
    let percent: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| PriceChangeArgError::NotANumber { text: text.to_owned() })?;
    Ok(InvalidPriceChange::check(percent)?)
}

/// A method name that is not an HTTP token.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an HTTP method")]
struct InvalidMethodArg {
    text: String,
}

/// Methods are case-sensitive on the wire; people type `post` and mean `POST`.
fn parse_method(text: &str) -> Result<Method, InvalidMethodArg> {
    let upper = text.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err(InvalidMethodArg { text: text.to_owned() });
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| InvalidMethodArg { text: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct DemoApp {
        #[command(flatten)]
        app: AppConfig,
    }

    #[test]
    fn the_documented_command_line_parses() {
        let args = [
            "demo-app",
            "--listen",
            "127.0.0.1:8080",
            "--revision",
            "v3",
            "--error-rate",
            "0.05",
            "--latency",
            "5ms",
        ];
        let parsed = DemoApp::try_parse_from(args).unwrap().app;
        assert_eq!(
            parsed,
            AppConfig {
                listen: "127.0.0.1:8080".parse().unwrap(),
                revision: "v3".into(),
                error_rate: 0.05,
                latency: Duration::from_millis(5),
                latency_jitter: Duration::ZERO,
                fail_methods: Vec::new(),
                price_change: 0.0,
            }
        );
    }

    fn parse(extra: &[&str]) -> Result<AppConfig, clap::Error> {
        let base = ["demo-app", "--listen", "127.0.0.1:0", "--revision", "v4"];
        DemoApp::try_parse_from(base.iter().chain(extra)).map(|parsed| parsed.app)
    }

    #[test]
    fn fail_methods_take_a_comma_separated_list_in_any_case() {
        assert_eq!(parse(&["--fail-methods", "POST"]).unwrap().fail_methods, [Method::POST]);
        assert_eq!(
            parse(&["--fail-methods", "post,Put"]).unwrap().fail_methods,
            [Method::POST, Method::PUT]
        );
        let message = parse(&["--fail-methods", "PO ST"]).unwrap_err().to_string();
        assert!(message.contains("not an HTTP method"), "{message}");
    }

    #[test]
    fn price_changes_may_be_negative_but_not_minus_a_hundred_percent_or_less() {
        assert_eq!(parse(&["--price-change", "5"]).unwrap().price_change, 5.0);
        assert_eq!(parse(&["--price-change", "-2.5"]).unwrap().price_change, -2.5);
        assert_eq!(parse(&["--price-change", "10%"]).unwrap().price_change, 10.0);
        for bad in ["-100", "inf", "NaN", "five"] {
            assert!(parse(&["--price-change", bad]).is_err(), "{bad}");
        }
        let message = parse(&["--price-change", "-150"]).unwrap_err().to_string();
        assert!(message.contains("above -100"), "{message}");
    }

    #[test]
    fn an_error_rate_given_as_a_percentage_is_rejected() {
        let args = [
            "demo-app",
            "--listen",
            "127.0.0.1:0",
            "--revision",
            "v3",
            "--error-rate",
            "5",
        ];
        let message = DemoApp::try_parse_from(args).unwrap_err().to_string();
        assert!(message.contains("between 0 and 1"), "{message}");
    }
}
