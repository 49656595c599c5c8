//! The demo service and the bounded load generator used by `sluice demo`.
//!
//! [`app`] is a tiny HTTP service whose revisions differ only in name, latency and a deterministic
//! error rate, so a demo's outcome never depends on chance. [`load`] is an open-loop load generator
//! with live per-revision statistics; it is general enough to drive load tests against any HTTP/1.1
//! target.

pub mod app;
pub mod load;
