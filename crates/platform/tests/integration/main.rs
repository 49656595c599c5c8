//! Real processes under the local platform: python3 HTTP servers and `sh` one-liners, all on
//! loopback, all killed when a test ends (even when it fails).

mod adoption;
mod failures;
mod harness;
mod lifecycle;
mod process_utils;
mod stop;
