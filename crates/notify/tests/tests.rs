//! The crate as the daemon and the receivers see it: real HTTP servers on loopback, real files, the real
//! environment. One test binary, a module per area, so the crate links once.

mod dispatch;
mod messages;
mod secrets;
mod server;
mod webhooks;
