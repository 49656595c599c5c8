//! Checks against one revision in isolation, before any user request reaches it: the isolation stage's checks
//! against a candidate's instance, and blue/green's pre-promotion checks against its preview address.
//!
//! [`run`] sends every smoke check ([`sluice_spec::SmokeCheck`]: a request, the status it must get, text its body
//! must contain), then, if they all passed, an open-loop load test ([`sluice_spec::LoadTest`]) held to its SLO.
//! The [`CheckReport`] says what passed and, for what did not, why in words a person can act on
//! (`GET /healthz: expected 200, got 503`, `p99 412 ms > 200 ms over 1000 requests`); the daemon persists it and
//! hands the verdict to the engine, which stays free of I/O.
//!
//! Every run is bounded: each request by a timeout, the load test by its schedule's length, an in-flight limit
//! and a hard end at its duration plus the request timeout. The load generator is the demo crate's, so the demo,
//! the benchmark and these checks measure latency the same way: from when each request was due.
//!
//! ```no_run
//! # async fn example(checks: &sluice_spec::Checks) -> Result<(), sluice_checks::TargetError> {
//! let target = sluice_checks::Target::parse("http://127.0.0.1:8080")?;
//! let report = sluice_checks::run(checks, &target).await;
//! println!("{}", report.summary());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod checker;
mod load;
mod report;
mod request;
mod smoke;
mod target;

pub use checker::{CheckOptions, Checker, run};
pub use load::LoadOutcome;
pub use report::CheckReport;
pub use smoke::SmokeOutcome;
pub use target::{Target, TargetError};
