//! Routers steer a service's traffic between its revisions. The engine decides weights; a router makes a data
//! plane carry them out. The embedded default is [`BuiltinRouter`], which pushes versioned route tables to
//! Sluice's own proxy process; Envoy (xDS), nginx and HAProxy routers will implement the same trait.

mod builtin;

use std::future::Future;
use std::net::SocketAddr;

pub use builtin::{BuiltinRouter, preview_name};
use thiserror::Error;

/// One revision's place in a service's routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionRoute {
    /// The revision's name.
    pub revision: String,
    /// Its share of new requests, in percent.
    pub weight: u8,
    /// Where its instances listen.
    pub instances: Vec<SocketAddr>,
}

/// How one service's traffic is to be split. Revisions with weight 0 stay routable for in-flight requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRouting {
    /// The service's name.
    pub service: String,
    /// Where users send its traffic.
    pub listen: SocketAddr,
    /// Its revisions and their weights, the stable revision first and the candidate second.
    pub revisions: Vec<RevisionRoute>,
    /// Keeps each user on one revision as the weights change.
    pub affinity: Option<Affinity>,
    /// Requests matching any of these rules go to `revision`, whatever the weights (A/B testing).
    pub matches: Option<MatchRoute>,
    /// A share of requests copied to a revision whose answers are dropped (the shadow stage).
    pub mirror: Option<MirrorRoute>,
    /// A second address where one revision answers alone (the blue/green preview).
    pub preview: Option<PreviewRoute>,
}

/// Requests matching one of `rules` go to `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchRoute {
    /// The rules, as the spec states them.
    pub rules: Vec<sluice_spec::MatchRule>,
    /// Where matching requests go; it must be among the routing's revisions.
    pub revision: String,
}

/// Copies of a share of requests, answers dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRoute {
    /// The revision the copies go to; it must be among the routing's revisions (with weight 0).
    pub revision: String,
    /// Percent of eligible requests copied.
    pub percent: u8,
    /// Methods that are copied.
    pub methods: Vec<String>,
    /// Requests with larger bodies are not copied.
    pub max_body_bytes: u64,
}

/// A listener of its own for one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewRoute {
    /// Where the preview listens.
    pub listen: SocketAddr,
    /// The revision that answers there.
    pub revision: RevisionRoute,
}

/// Where a user's identity comes from, for session affinity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// A cookie of this name (set with a random key for a new user).
    Cookie(String),
    /// A request header, hashed consistently.
    Header(String),
}

/// Why a router could not carry out a routing.
#[derive(Debug, Error)]
pub enum RouterError {
    /// The data plane could not be reached.
    #[error("router: cannot reach the proxy at {addr}: {source}")]
    Unreachable { addr: SocketAddr, source: reqwest::Error },
    /// The data plane refused the routing.
    #[error("router: the proxy at {addr} refused the route table ({status}): {message}")]
    Refused {
        addr: SocketAddr,
        status: u16,
        message: String,
    },
}

/// A data plane that can be told how to split traffic. Implementations must be idempotent: applying the same
/// routing twice changes nothing.
pub trait Router: Send + Sync + 'static {
    /// Makes the data plane split `routing.service`'s traffic as described, leaving other services alone.
    fn apply(&self, routing: &ServiceRouting) -> impl Future<Output = Result<(), RouterError>> + Send;
}
