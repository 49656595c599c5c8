//! Service specs: types, YAML parsing, validation with field paths, JSON Schema, revision checksums.
//!
//! A spec goes through [`parse`] in three steps: YAML becomes a generic value; that value is checked against
//! the JSON Schema generated from the Rust types ([`json_schema`]) and against the rules a schema cannot
//! express (which fields go together, per-metric bounds); only a spec with no problem at all becomes a
//! [`ServiceSpec`]. Pure: no I/O beyond the text the caller hands in.
#![warn(missing_docs)]

mod analysis;
mod duration;
mod errors;
mod hooks;
mod messages;
mod parse;
mod path;
mod revision;
mod rules;
mod schema;
mod service;
mod stages;
mod strategy;
mod syntax;
mod yaml;

pub use analysis::{
    Analysis, CustomMetric, DEFAULT_TOLERANCE, Judge, MannWhitneySettings, MetricCheck, MetricName, MetricProvider,
    OnFailure, OnInconclusive, ThresholdRange,
};
pub use duration::{Duration, InvalidDuration};
pub use errors::{FieldError, SpecErrors};
pub use hooks::{Alert, AlertProvider, AlertSeverity, SecretRef, Webhook, WebhookKind};
pub use parse::parse;
pub use revision::RevisionRef;
pub use schema::json_schema;
pub use service::{Metadata, ProcessSpec, Readiness, RevisionSpec, ServiceBody, ServiceSpec};
pub use stages::{Checks, HttpRequest, LoadTest, NoiseMargin, Shadow, Slo, SmokeCheck, Stages};
pub use strategy::{AbTest, BlueGreen, Canary, DEFAULT_MAX_WEIGHT, MatchRule, SessionAffinity, Strategy, StringMatch};
pub use syntax::{API_VERSION, KIND, PORT_PLACEHOLDER};
