//! The embedded store: SQLite through rusqlite (bundled), one file in the data directory.
//!
//! It keeps what must survive a `kill -9` of the daemon: the applied specs and every revision they described,
//! each rollout's state together with the actions of its last decision that may not have been carried out yet,
//! the event history, operator commands not yet taken up, and the processes the daemon started (the platform's
//! ledger and the proxy). A decision's state, its pending actions, its events and the commands it consumed are
//! written in one transaction, so a crash leaves either all of it or none.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward on open.

mod migrations;
mod store;

pub use store::{AppliedSpec, ProcessRecord, Store, StoreError, StoredEvent};
