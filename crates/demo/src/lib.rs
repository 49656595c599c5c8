//! The demo service and the bounded load generator used by `sluice demo`.
//!
//! [`app`] is a tiny HTTP service (JSON items, a greeting) whose revisions differ only in name,
//! latency, a deterministic error rate (for all methods or some) and a price change, so a demo's
//! outcome never depends on chance. [`load`] is an open-loop load generator
//! with live per-revision statistics; it is general enough to drive load tests against any HTTP/1.1
//! target.

pub mod app;
pub mod load;
