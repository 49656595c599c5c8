//! Shadow traffic with Diffy-style response diffing: does the candidate answer live requests as the stable
//! revision does, beyond the differences two stable instances show anyway?
//!
//! During a rollout's shadow stage the built-in proxy mirrors a share of live requests to a
//! [`ShadowServer`] listener. For each, the listener sends the same request at once to three places: the
//! *primary* (a stable instance), the *secondary* (a second stable instance started for the stage) and the
//! *candidate*. It [`compare()`]s primary with candidate and primary with secondary, and an [`Accumulator`]
//! counts, per field, how often each pair differed. A field is real when the candidate differs more often
//! than the secondary by both of the spec's margins, so timestamps and request ids, which differ between any
//! two answers, cancel out. The [`DiffReport`] gives the rate of requests with a real difference and its
//! [`verdict`](DiffReport::verdict) against `maxDiffRate`.
//!
//! ```no_run
//! # async fn run(spec: &sluice_spec::Shadow, stable: Vec<std::net::SocketAddr>,
//! #     secondary: std::net::SocketAddr, candidate: Vec<std::net::SocketAddr>) -> Result<(), sluice_shadow::ShadowError> {
//! use sluice_shadow::{ShadowServer, ShadowTargets, ShadowVerdict};
//!
//! let shadow = ShadowServer::start(spec, ShadowTargets { primary: stable, secondary, candidate }).await?;
//! // Point the proxy's mirror at `shadow.addr()`, wait for the stage's duration, then:
//! let report = shadow.shutdown().await;
//! if let ShadowVerdict::Fail { summary } = report.verdict(spec.max_diff_rate) {
//!     eprintln!("shadow stage failed: {summary}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! *Architecture invariant*: [`mod@compare`] and [`report`] are pure (no I/O, no clock), so they are tested on
//! their own and cannot panic on what instances answer; only [`server`] does I/O.

#![warn(missing_docs)]

pub mod compare;
mod error;
mod fanout;
pub mod field;
pub mod report;
pub mod server;

pub use compare::{Answer, CompareSettings, Difference, compare};
pub use error::ShadowError;
pub use field::Ignore;
pub use report::{Accumulator, DiffReport, Example, FieldDiff, ShadowVerdict};
pub use server::{Limits, ShadowHandle, ShadowServer, ShadowTargets};
