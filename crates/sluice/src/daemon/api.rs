//! The daemon's HTTP API (JSON). Reads are open to whoever can reach the listener (loopback by default);
//! mutating calls need the bearer token kept in the data directory.

use std::sync::Arc;

use axum::Json;
use axum::Router as Routes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde::Deserialize;
use sluice_engine::{Command, Phase, Rollout};

use super::Daemon;
use super::telemetry;
use crate::model::{Applied, ErrorBody, InstanceView, ServiceStatus, ServiceSummary};

type Shared = Arc<Daemon>;

/// The API's routes.
pub fn routes(daemon: Shared) -> Routes {
    let mutating = Routes::new()
        .route("/v1/services", post(apply))
        .route("/v1/services/{name}/{command}", post(command))
        .route_layer(middleware::from_fn_with_state(daemon.clone(), authenticate));
    Routes::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v1/services", get(list))
        .route("/v1/services/{name}", get(status))
        .route("/v1/services/{name}/events", get(events))
        .merge(mutating)
        .with_state(daemon)
}

struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError(
            status,
            ErrorBody {
                error: error.into(),
                errors: Vec::new(),
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for ApiError
where
    E: Into<anyhow::Error>,
{
    fn from(error: E) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}"))
    }
}

async fn authenticate(State(daemon): State<Shared>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), daemon.token.as_bytes()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a valid token is required (the CLI reads it from the data directory)",
        )
        .into_response();
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn apply(State(daemon): State<Shared>, body: String) -> Result<Json<Applied>, ApiError> {
    let spec = sluice_spec::parse(&body).map_err(|errors| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorBody {
                error: format!("the spec has {} error(s); nothing was applied", errors.errors.len()),
                errors: errors
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect(),
            },
        )
    })?;
    let store = &daemon.store;
    let name = spec.metadata.name.clone();
    let revision = spec.revision();
    // The built-in proxy carries one listener per address: a service's address or blue/green preview may not be
    // another service's.
    let wanted = listeners(&spec);
    for other in store.services()? {
        if other == name {
            continue;
        }
        let Some(applied) = store.applied(&other)? else {
            continue;
        };
        let taken = listeners(&applied.spec);
        if let Some((field, addr)) = wanted.iter().find(|(_, addr)| taken.iter().any(|(_, t)| t == addr)) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{field}: {addr} is already an address of service {other}; nothing was applied"),
            ));
        }
    }
    if let Some(checksum) = store.checksum_of(&name, &revision.name)?
        && checksum != revision.checksum
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "spec.revision.name: {} was already applied with different revision fields; give the changed revision a new name (or none); nothing was applied",
                revision.name
            ),
        ));
    }
    let previous = store.applied(&name)?.map(|a| a.revision);
    store.apply_spec(&body, &spec, Timestamp::now())?;
    daemon.controller.wake(&name);
    Ok(Json(Applied {
        service: name,
        new_revision: previous.as_ref() != Some(&revision),
        revision,
    }))
}

async fn command(
    State(daemon): State<Shared>,
    Path((name, command)): Path<(String, String)>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let command = match command.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "promote" => Command::Promote,
        "abort" => Command::Abort,
        "approve" => Command::Approve,
        "retry" => Command::Retry,
        "undo" => return undo(&daemon, &name),
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown command {other:?}: expected pause, resume, promote, abort, approve, retry or undo"),
            ));
        }
    };
    let (rollout, _) = daemon
        .store
        .rollout(&name)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no service named {name}")))?;
    rollout
        .accepts(command)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    daemon.store.queue_command(&name, command, Timestamp::now())?;
    daemon.controller.wake(&name);
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "queued": command }))))
}

/// Undo is not a command to the engine but a new desired state: the spec as applied, with the revision the
/// last promotion replaced. Its rollout then runs like any other, through the same stages and analysis.
fn undo(daemon: &Daemon, name: &str) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let (applied, rollout) = rollout_of(daemon, name)?;
    if rollout.phase != Phase::Succeeded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "cannot undo the rollout of {name} in phase {}: only a promoted rollout can be undone",
                rollout.display_phase()
            ),
        ));
    }
    let previous = rollout.previous.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("{name} has no previous revision to go back to"),
        )
    })?;
    let revision = daemon.store.revision(name, previous)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("revision {} of {name} is no longer in the store", previous.name),
        )
    })?;
    let mut spec = applied.spec.clone();
    spec.spec.revision = revision;
    // JSON is YAML: the stored text stays a spec `sluice apply` would take.
    let text = serde_json::to_string_pretty(&spec)?;
    daemon.store.apply_spec(&text, &spec, Timestamp::now())?;
    daemon.controller.wake(name);
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "undo": { "from": rollout.stable.map(|r| r.name), "to": previous.name } })),
    ))
}

/// The addresses the proxy listens on for a service, with the spec field that names each.
fn listeners(spec: &sluice_spec::ServiceSpec) -> Vec<(&'static str, std::net::SocketAddr)> {
    let mut listeners = vec![("spec.listen", spec.spec.listen)];
    if let sluice_spec::Strategy::BlueGreen(blue_green) = &spec.spec.strategy
        && let Some(preview) = blue_green.preview_listen
    {
        listeners.push(("spec.strategy.blueGreen.previewListen", preview));
    }
    listeners
}

fn rollout_of(daemon: &Daemon, name: &str) -> Result<(sluice_store::AppliedSpec, Rollout), ApiError> {
    let applied = daemon
        .store
        .applied(name)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no service named {name}")))?;
    let rollout = daemon
        .store
        .rollout(name)?
        .map_or_else(|| Rollout::new(name), |(r, _)| r);
    Ok((applied, rollout))
}

async fn status(State(daemon): State<Shared>, Path(name): Path<String>) -> Result<Json<ServiceStatus>, ApiError> {
    let (applied, rollout) = rollout_of(&daemon, &name)?;
    let events = daemon.store.recent_events(&name, 15)?;
    let instances = [&rollout.stable, &rollout.candidate, &rollout.retired]
        .into_iter()
        .flatten()
        .flat_map(|revision| daemon.controller.instances(&name, revision))
        .map(|(revision, i)| InstanceView {
            revision,
            index: i.index,
            addr: i.addr,
            pid: i.pid,
            log: i.log_path,
        })
        .collect();
    let reports = daemon.store.reports(&name)?;
    Ok(Json(ServiceStatus::new(
        applied.revision,
        &rollout,
        events,
        instances,
        reports,
    )))
}

async fn list(State(daemon): State<Shared>) -> Result<Json<Vec<ServiceSummary>>, ApiError> {
    let mut services = Vec::new();
    for name in daemon.store.services()? {
        let (_, rollout) = rollout_of(&daemon, &name)?;
        services.push(ServiceSummary {
            name,
            phase: rollout.display_phase(),
            stable: rollout.stable.map(|r| r.name),
            candidate: rollout.candidate.map(|r| r.name),
            weight: rollout.weight,
        });
    }
    Ok(Json(services))
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: i64,
}

async fn events(
    State(daemon): State<Shared>,
    Path(name): Path<String>,
    Query(after): Query<After>,
) -> Result<Json<Vec<sluice_store::StoredEvent>>, ApiError> {
    rollout_of(&daemon, &name)?;
    Ok(Json(daemon.store.events(&name, after.after, 1000)?))
}

async fn metrics(State(daemon): State<Shared>) -> Result<Response, ApiError> {
    let text = telemetry::render(&daemon.store, daemon.controller.notification_counters())?;
    Ok((
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
