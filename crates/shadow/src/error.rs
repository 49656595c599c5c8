//! Why a shadow listener could not be set up. Comparing and reporting never fail: whatever the answers hold,
//! they come out as differences.

use std::io;

use thiserror::Error;

/// Why the shadow stage could not start or take new targets.
#[derive(Debug, Error)]
pub enum ShadowError {
    /// An `ignore` entry is not a JSON path, `headers.<name>`, `status` or `body`.
    #[error("shadow.ignore: {entry:?} is not a field: {reason}")]
    Ignore {
        /// The entry as written.
        entry: String,
        /// What was expected, and where.
        reason: String,
    },
    /// A `headers` entry is not a valid HTTP header name.
    #[error("shadow.headers: {name:?} is not an HTTP header name")]
    Header {
        /// The entry as written.
        name: String,
    },
    /// A `methods` entry is not a valid HTTP method.
    #[error("shadow.methods: {method:?} is not an HTTP method")]
    Method {
        /// The entry as written.
        method: String,
    },
    /// A role that must have at least one instance has none.
    #[error("shadow: no {role} instance to send requests to")]
    NoInstances {
        /// `primary` or `candidate`.
        role: &'static str,
    },
    /// The listener could not be bound.
    #[error("shadow: cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] io::Error),
}
