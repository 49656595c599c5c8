//! The demo service: `hello from <revision>`, with configurable latency and an exactly-spread error
//! rate.

mod config;
mod duration_arg;
mod error_schedule;
mod latency;
mod server;

pub use config::{AppConfig, InvalidAppConfig, InvalidErrorRate};
pub use duration_arg::{ParseDurationError, parse_duration};
pub use server::{AppHandle, serve, start};
