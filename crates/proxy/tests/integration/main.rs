//! End-to-end tests: a proxy started in-process, real backends and clients on loopback sockets.

mod admin;
mod common;
mod forwarding;
mod health;
mod lean;
mod metrics;
mod mirror;
mod pipelined;
mod protocols;
mod rules;
mod split;
mod state_file;
mod swaps;
mod versions;
