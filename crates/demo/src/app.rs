//! The demo service: `hello from <revision>` and a JSON item endpoint, with configurable latency, an
//! exactly-spread error rate (optionally for some methods only) and a configurable price change.

mod config;
mod duration_arg;
mod error_schedule;
mod item;
mod latency;
mod server;

pub use config::{AppConfig, InvalidAppConfig, InvalidErrorRate, InvalidPriceChange};
pub use duration_arg::{ParseDurationError, parse_duration};
pub use server::{AppHandle, serve, start};
