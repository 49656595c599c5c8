//! What one revision of the demo service looks like: its name, its latency and its error rate.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// evenly.
    #[arg(long, default_value_t = 0.0, value_parser = parse_error_rate)]
    pub error_rate: f64,
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

/// A configuration the demo app cannot serve.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidAppConfig {
    /// The error rate is not a fraction.
    #[error(transparent)]
    ErrorRate(#[from] InvalidErrorRate),
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
            }
        );
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
