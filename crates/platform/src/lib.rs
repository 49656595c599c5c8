//! Platforms that run revisions; the local-process platform of the embedded default.
//!
//! The control-plane daemon may be killed at any moment, while the instances it started keep
//! serving users. So every process is recorded in a [`Ledger`] the moment it exists, a restarted
//! daemon adopts the recorded processes that still run, and every operation is idempotent.
#![warn(missing_docs)]

mod error;
mod ledger;
mod local;
mod model;
mod platform;
mod probe;
pub mod process;

pub use error::{LedgerError, PlatformError};
pub use ledger::{Ledger, MemoryLedger};
pub use local::LocalPlatform;
pub use model::{Instance, InstanceRecord, ProcessTemplate, RestartPolicy, RevisionHealth, RevisionKey};
pub use platform::Platform;
