//! The built-in data plane: a weighted HTTP reverse proxy with rules, affinity, mirroring and per-revision RED metrics.
//!
//! The proxy runs in its own process (`sluice proxy`), never inside the control-plane daemon, so
//! a daemon crash or upgrade interrupts no user request. The daemon pushes [`RouteTable`]s to the
//! admin listener; the proxy persists each one to its state file before it takes effect, keeps
//! serving the last one while the daemon is away, and restores it from the state file when it
//! restarts.
//!
//! # Routing
//!
//! Every [`ServiceRoute`] gets its own listener, speaking HTTP/1.1 (keep-alive) and HTTP/2 (h2c with prior
//! knowledge, or ALPN `h2` over TLS when the route has a [`Tls`] certificate, served by rustls with the
//! `ring` provider). A request's revision is chosen in this order:
//!
//! 1. `match` rules ([`MatchRule`]), in order: headers (exact or regex; any value of the header may match)
//!    and cookies; the first rule whose conditions all hold sends the request to its revision, whatever the
//!    weights (A/B tests, "only insiders see the candidate").
//! 2. Session affinity ([`SessionAffinity`]), when configured and the request carries the user's key (a
//!    header, or a cookie that the proxy sets with a random key on a new user's first answer): the key hashes
//!    to a point and revisions own ranges of points sized by their weights, the last listed revision (the
//!    candidate) from the bottom. A user on the candidate stays there while its weight grows, and every user
//!    is back on the first revision when the candidate's weight is 0 (a rollback).
//! 3. Otherwise nginx's smooth weighted round-robin, which is deterministic: weights 90/10 send exactly 9 of
//!    every 10 requests to the first revision.
//!
//! Within a revision, instances take turns. Requests go over pooled keep-alive HTTP/1.1 connections (or one
//! multiplexed HTTP/2 connection per instance with [`UpstreamProtocol::Http2`], for gRPC) with hop-by-hop
//! headers removed, `Host` kept as received, the client's IP appended to `x-forwarded-for`,
//! `x-forwarded-proto` set to `http` or `https`, and an `x-request-id` (16 hex digits) added when the client
//! sent none; bodies and trailers are streamed both ways. An `Upgrade` request (WebSocket) is passed on, and
//! after a `101` both connections are tunnelled byte for byte.
//!
//! The common case, a plain-text HTTP/1.1 request with no body or a body of known length up to 64 KiB, to a
//! service without mirroring whose instances speak HTTP/1.1, takes a lean path: the client connection's own task
//! parses the head in place, writes the edited head and the body to a pooled instance connection, and relays
//! the answer as the instance framed it (length, chunked or until close), with the same routing, health,
//! errors, timeouts and measurements. Any other request is served by hyper, from that request on for the rest
//! of its connection.
//!
//! # Passive health
//!
//! An instance whose connection fails (refused, reset or past the connect timeout) is ejected: it gets no new
//! requests for 5 s, doubling with each consecutive failure up to 40 s, and the request is sent to the
//! revision's next instance instead (nothing was sent yet, so any request can move). Such a failure is
//! counted in the revision's `connectFailures` (and the instance's), **not** in its status classes: the
//! revision's code never saw the request. Only when no instance of the revision can be reached does the
//! client get a `502`, which then counts as a 5xx of the revision, since the revision as a whole is down.
//! When every instance is ejected, they are tried in turn anyway.
//!
//! # Mirroring
//!
//! With a [`Mirror`], an exact share of the requests whose method is listed (by default the idempotent `GET`,
//! `HEAD` and `OPTIONS`) is copied to a revision, and the copy's answer is read and dropped. Copies leave only
//! once the user's request has its answer, from their own task; at most `maxInFlight` are in flight per
//! service (more are dropped and counted), and a request with a body larger than `maxBodyBytes` or of unknown
//! length is not copied (counted). Copies are measured apart from users' requests.
//!
//! # Errors answered by the proxy
//!
//! - `503` when the listener's service has no revision with a non-zero weight;
//! - `502` when no instance of the chosen revision can be reached (the body names the revision and instance,
//!   and says `connect timeout` when that is why), or when the instance breaks off its answer;
//! - `504` when the instance sends no answer headers within the request timeout (the body says
//!   `request timeout`).
//!
//! They count as 5xx of the revision. Swapping tables never fails an in-flight request nor closes a client
//! connection: requests already dispatched finish on their backend, and only listeners of services that left
//! the table stop (after their in-flight requests finish). A revision that left the table reports its
//! `inFlight` requests, so a supervisor can wait for 0 before stopping its processes.
//!
//! # Workers
//!
//! By default listeners are served on the caller's runtime. With [`ProxyConfig::workers`] `= N`, `N` threads
//! each run a current-thread runtime with their own listening socket per service (`SO_REUSEPORT`), upstream
//! connection pools and measurement shards: a request never crosses threads nor waits on a lock another
//! worker holds. `sluice proxy --config FILE --workers N` runs the data plane alone from a YAML routes file
//! ([`load_routes_file`]).
//!
//! # Admin API
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /healthz` | `200 ok` |
//! | `GET /routes` | the current [`RouteTable`] |
//! | `PUT /routes` | applies a newer table: `200 {"version": N}`; the same table again is a no-op `200`; an older version, or the same version with other content, `409`; an invalid table, a listen address that cannot be bound or an unusable certificate `422` (nothing changes); failure to persist `500` |
//! | `GET /snapshot` | a [`snapshot::Snapshot`] (cumulative counts, latency buckets and an HDR histogram per revision, with per-route and mirror breakdowns, and each instance's health) |
//! | `GET /metrics` | Prometheus/OpenMetrics text, below |
//!
//! Errors are JSON: `{"error": "..."}`.
//!
//! # Metrics
//!
//! Metric names and labels are a public API. `route` is `default` for the weighted split (with or without
//! affinity) or the name of the `match` rule that sent the request (`match-<index>` when unnamed); `class` is
//! one of `1xx` … `5xx` (for gRPC answers, the class of their `grpc-status`: `OK` 2xx, codes that blame the
//! caller 4xx, others 5xx).
//!
//! - `sluice_proxy_requests_total{service, revision, class}` — counter of responses, every route.
//! - `sluice_proxy_request_duration_seconds{service, revision}` — histogram of the time from receiving a
//!   request to sending its response headers, with buckets [`LATENCY_BOUNDS_MS`] (in seconds) and `+Inf`.
//! - `sluice_proxy_request_duration_quantile_seconds{service, revision, quantile}` — gauge, exact quantiles
//!   0.5, 0.9, 0.99 and 0.999 from the HDR histogram.
//! - `sluice_proxy_route_requests_total{service, revision, route, class}` and
//!   `sluice_proxy_route_request_duration_seconds{service, revision, route}` — the same per route.
//! - `sluice_proxy_in_flight_requests{service, revision, route}` — gauge of requests not yet answered in full.
//! - `sluice_proxy_received_bytes_total` / `sluice_proxy_sent_bytes_total{service, revision, route}` — body
//!   bytes from and to clients.
//! - `sluice_proxy_grpc_responses_total{service, revision, route, grpc_status}` — gRPC answers by code.
//! - `sluice_proxy_connect_failures_total{service, revision}` — failed connections to instances.
//! - `sluice_proxy_upgrades_total{service, revision}` — tunnelled (WebSocket) connections.
//! - `sluice_proxy_mirror_requests_total{service, revision, class}`,
//!   `sluice_proxy_mirror_request_duration_seconds{service, revision}` and
//!   `sluice_proxy_mirror_not_sent_total{service, revision, reason}` (`full`, `body_too_large`) — copies.
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
mod lean;
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
pub use forward::strip_hop_by_hop;
pub use lifecycle::{ProxyConfig, ProxyHandle, run, start};
pub use routes::{
    Backend, DEFAULT_ROUTE, MatchRule, Mirror, RouteTable, ServiceRoute, SessionAffinity, StringMatch, TableError,
    Timeouts, Tls, UpstreamProtocol,
};
pub use snapshot::LATENCY_BOUNDS_MS;
pub use state_file::{StateFileError, admin_address_path};
pub use tls::TlsError;
