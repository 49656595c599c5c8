//! The demo service and the bounded load generator used by `sluice demo`.
