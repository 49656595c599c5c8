//! An open-loop HTTP/1.1 load generator with live per-revision statistics.
//!
//! Requests are *scheduled* at a fixed rate rather than sent when the previous answer arrives, so a
//! slow target does not slow the offered load (no coordinated omission). Every run is bounded three
//! ways: by duration, by request count, and by the number of requests in flight (excess ones are
//! dropped and counted, never queued).

mod config;
mod runner;
mod stats;

pub use config::{LoadConfig, LoadConfigError, RequestTemplate};
pub use runner::{LoadHandle, start};
pub use stats::{LoadSnapshot, LoadStats, LoadWindow, RevisionLoad};
