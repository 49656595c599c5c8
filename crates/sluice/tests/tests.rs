//! End-to-end tests of the `sluice` binary.
