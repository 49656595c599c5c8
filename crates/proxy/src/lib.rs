//! The built-in data plane: a weighted HTTP reverse proxy with per-revision RED metrics.
//!
//! The proxy runs in its own process (`sluice proxy`), never inside the control-plane daemon, so
//! a daemon crash or upgrade interrupts no user request. The daemon pushes [`RouteTable`]s to the
//! admin listener; the proxy persists each one to its state file before it takes effect, keeps
//! serving the last one while the daemon is away, and restores it from the state file when it
//! restarts.
//!
//! # Routing
//!
//! Every [`ServiceRoute`] gets its own listener (HTTP/1.1 with keep-alive, or HTTP/2 with prior
//! knowledge). Each request goes to a revision chosen by nginx's smooth weighted round-robin,
//! which is deterministic: weights 90/10 send exactly 9 of every 10 requests to the first
//! revision. Within a revision, instances take turns. Requests are forwarded over pooled
//! keep-alive HTTP/1.1 connections with hop-by-hop headers removed, `Host` kept as received and
//! the client's IP appended to `x-forwarded-for`; bodies are streamed both ways.
//!
//! The proxy answers on its own when it cannot forward:
//! - `503` when the listener's service has no revision with a non-zero weight;
//! - `502` when an instance cannot be reached, naming the revision and instance; it counts as a
//!   5xx of that revision.
//!
//! Swapping tables never fails an in-flight request nor closes a client connection: requests
//! already dispatched finish on their backend, and only listeners of services that left the
//! table stop (after their in-flight requests finish).
//!
//! # Admin API
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /healthz` | `200 ok` |
//! | `GET /routes` | the current [`RouteTable`] |
//! | `PUT /routes` | applies a newer table: `200 {"version": N}`; the same table again is a no-op `200`; an older version, or the same version with other content, `409`; an invalid table or a listen address that cannot be bound `422` (nothing changes); failure to persist `500` |
//! | `GET /snapshot` | a [`snapshot::Snapshot`] (cumulative counts, latency buckets and an HDR histogram per revision) |
//! | `GET /metrics` | Prometheus/OpenMetrics text, below |
//!
//! Errors are JSON: `{"error": "..."}`.
//!
//! # Metrics
//!
//! Metric names and labels are a public API:
//!
//! - `sluice_proxy_requests_total{service, revision, class}` — counter of responses, `class` one
//!   of `1xx`, `2xx`, `3xx`, `4xx`, `5xx`.
//! - `sluice_proxy_request_duration_seconds{service, revision}` — histogram of the time from
//!   receiving a request to sending its response headers, with buckets [`LATENCY_BOUNDS_MS`]
//!   (in seconds) and `+Inf`.
//! - `sluice_proxy_routes_version` — gauge, version of the route table in effect.
//!
//! Every revision that is in the table or has received a request since the proxy started is
//! reported, with counters that never reset while the process lives.
//!
//! # Example
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use sluice_proxy::{Backend, ProxyConfig, RouteTable, ServiceRoute};
//!
//! # async fn example() -> Result<(), sluice_proxy::ProxyError> {
//! let table = RouteTable {
//!     version: 1,
//!     services: vec![ServiceRoute::new(
//!         "web".into(),
//!         SocketAddr::from(([127, 0, 0, 1], 8080)),
//!         vec![
//!             Backend { revision: "v1".into(), weight: 90, instances: vec![SocketAddr::from(([127, 0, 0, 1], 9001))] },
//!             Backend { revision: "v2".into(), weight: 10, instances: vec![SocketAddr::from(([127, 0, 0, 1], 9002))] },
//!         ],
//!     )],
//! };
//! let proxy = sluice_proxy::start(ProxyConfig {
//!     admin: SocketAddr::from(([127, 0, 0, 1], 0)),
//!     state_file: Some("/var/lib/sluice/routes.json".into()),
//!     initial: Some(table),
//!     workers: None,
//! })
//! .await?;
//! println!("admin API on http://{}", proxy.admin_addr());
//! proxy.shutdown().await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod admin;
mod affinity;
mod balancer;
mod body;
mod config_file;
mod control;
mod error;
mod exposition;
mod forward;
mod lifecycle;
mod matching;
mod mirror;
mod plane;
mod routes;
mod routing;
mod server;
pub mod snapshot;
mod state_file;
mod stats;
mod tls;
mod upgrade;
mod upstream;
mod worker;
mod workers;

pub use config_file::{ConfigFileError, load_routes_file};
pub use control::BindError;
pub use error::ProxyError;
pub use lifecycle::{ProxyConfig, ProxyHandle, run, start};
pub use routes::{
    Backend, DEFAULT_ROUTE, MatchRule, Mirror, RouteTable, ServiceRoute, SessionAffinity, StringMatch, TableError,
    Timeouts, Tls, UpstreamProtocol,
};
pub use snapshot::LATENCY_BOUNDS_MS;
pub use state_file::{StateFileError, admin_address_path};
pub use tls::TlsError;
