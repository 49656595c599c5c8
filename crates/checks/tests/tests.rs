//! The checks against real servers on loopback: a scripted axum app, the demo service, a server that never
//! answers, and an address nobody listens on.

mod load;
mod smoke;
mod support;
