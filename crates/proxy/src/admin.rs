//! The admin listener's HTTP API: health, route tables, snapshots and Prometheus metrics.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::control::{Applied, ApplyError, Control};
use crate::exposition;
use crate::plane::DataPlane;
use crate::routes::RouteTable;

/// A route table is a few KB per service; this bounds what a misbehaving client can make us buffer.
const MAX_TABLE_BYTES: usize = 8 * 1024 * 1024;

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin handlers need.
pub(crate) struct Admin {
    control: Arc<Control>,
    plane: Arc<DataPlane>,
    registry: Registry,
}

impl Admin {
    pub(crate) fn new(control: Arc<Control>, plane: Arc<DataPlane>) -> Self {
        let registry = exposition::registry(plane.clone());
        Self {
            control,
            plane,
            registry,
        }
    }
}

/// Routes one admin request.
pub(crate) async fn handle(admin: Arc<Admin>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok".to_owned()),
        (&Method::GET, "/routes") => json(StatusCode::OK, &**admin.plane.table.load().spec()),
        (&Method::PUT, "/routes") => put_routes(&admin, request).await,
        (&Method::GET, "/snapshot") => match admin.plane.snapshot() {
            Ok(snapshot) => json(StatusCode::OK, &snapshot),
            Err(error) => error_json(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        },
        (&Method::GET, "/metrics") => metrics(&admin.registry),
        (_, "/healthz" | "/snapshot" | "/metrics") => method_not_allowed("GET"),
        (_, "/routes") => method_not_allowed("GET, PUT"),
        (_, path) => error_json(StatusCode::NOT_FOUND, format!("no admin endpoint {path}")),
    };
    Ok(response)
}

async fn put_routes(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(request.into_body(), MAX_TABLE_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return error_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a route table is at most {MAX_TABLE_BYTES} bytes"),
            );
        }
        Err(error) => {
            return error_json(StatusCode::BAD_REQUEST, format!("cannot read the route table: {error}"));
        }
    };
    let table: RouteTable = match serde_json::from_slice(&body) {
        Ok(table) => table,
        Err(error) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                format!("the body is not a route table: {error}"),
            );
        }
    };
    match admin.control.apply(table).await {
        Ok(Applied::Swapped { version } | Applied::Unchanged { version }) => {
            json(StatusCode::OK, &serde_json::json!({ "version": version }))
        }
        Err(error) => {
            let status = match &error {
                ApplyError::Stale { .. } | ApplyError::Conflicting { .. } => StatusCode::CONFLICT,
                ApplyError::Invalid(_) | ApplyError::Bind(_) | ApplyError::Tls(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ApplyError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!(%error, "route table rejected");
            error_json(status, error.to_string())
        }
    }
}

fn metrics(registry: &Registry) -> Response<Full<Bytes>> {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => with_content_type(StatusCode::OK, body.into(), OPENMETRICS_CONTENT_TYPE),
        Err(error) => error_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}"),
        ),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = error_json(StatusCode::METHOD_NOT_ALLOWED, format!("allowed methods: {allow}"));
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => with_content_type(status, body.into(), "application/json"),
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the response: {error}"),
        ),
    }
}

/// Errors are JSON too, `{"error": "..."}`, so clients parse every admin answer the same way.
fn error_json(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_content_type(status, body.into(), "text/plain; charset=utf-8")
}

fn with_content_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
