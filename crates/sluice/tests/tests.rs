//! End-to-end tests of the `sluice` binary: real daemon, real proxy process, real revision processes, real
//! traffic on loopback.

mod e2e;
